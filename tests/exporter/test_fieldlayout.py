"""FieldLayout: numbers picked by position, and the layout learned again when it changes."""

from minicluster.exporter.collectors.fieldlayout import FieldLayout
from minicluster.exporter.collectors.meminfo import parse_meminfo
from minicluster.exporter.collectors.vmstat import parse_vmstat


def pairs(words):
    return [(i, i + 1, words[i]) for i in range(0, len(words) - 1, 2) if words[i].startswith("pg")]


def test_numbers_follow_their_names_at_every_read():
    layout = FieldLayout(pairs)
    assert dict(layout.fields("pgfault 1\nnr_free 7\npgmajfault 2\n")) == {
        "pgfault": "1",
        "pgmajfault": "2",
    }
    assert dict(layout.fields("pgfault 10\nnr_free 8\npgmajfault 20\n")) == {
        "pgfault": "10",
        "pgmajfault": "20",
    }


def test_a_field_that_appears_or_moves_is_found_again():
    layout = FieldLayout(pairs)
    layout.fields("pgfault 1\npgmajfault 2\n")
    # A new field before the others shifts every position: same count of words would not do.
    assert dict(layout.fields("nr_free 5\npgfault 3\npgmajfault 4\n")) == {
        "pgfault": "3",
        "pgmajfault": "4",
    }
    # Same number of words, but names swapped places.
    assert dict(layout.fields("pgmajfault 6\nnr_free 5\npgfault 7\n")) == {
        "pgmajfault": "6",
        "pgfault": "7",
    }
    # A wanted field that went away.
    assert dict(layout.fields("nr_free 5\npgfault 8\n")) == {"pgfault": "8"}


def test_one_wanted_field_and_none():
    layout = FieldLayout(pairs)
    assert dict(layout.fields("nr_free 5\npgfault 8\n")) == {"pgfault": "8"}
    assert dict(layout.fields("nr_free 5\nnr_zero 8\n")) == {}


def test_kernel_files_read_alike_before_and_after_a_change_of_layout():
    vmstat = "nr_free_pages 9\npgpgin 100\npswpin 3\npgfault 77\noom_kill 0\n"
    assert parse_vmstat(vmstat) == {"pgpgin": 100, "pswpin": 3, "pgfault": 77, "oom_kill": 0}
    grown = "nr_free_pages 9\npgpgin 101\npgpgout 5\npswpin 3\npgfault 78\noom_kill 1\n"
    assert parse_vmstat(grown) == {
        "pgpgin": 101,
        "pgpgout": 5,
        "pswpin": 3,
        "pgfault": 78,
        "oom_kill": 1,
    }
    meminfo = "MemTotal:       1000 kB\nActive(anon):     20 kB\nHugePages_Total:       4\n"
    assert parse_meminfo(meminfo) == {
        "MemTotal_bytes": 1024_000.0,
        "Active_anon_bytes": 20 * 1024.0,
        "HugePages_Total": 4.0,
    }
