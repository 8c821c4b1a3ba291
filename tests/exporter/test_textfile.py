"""textfile: *.prom files served as they are, with node_exporter's mtime and error metrics."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry

from minicluster.core.config import ExporterSettings
from minicluster.exporter.collectors import textfile
from minicluster.exporter.registry import build_collectors
from tests.exporter.conftest import make_options
from tests.exporter.fakes import TEXTFILE


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def collector_for(directory) -> textfile.TextfileCollector:
    return textfile.TextfileCollector(directory=str(directory) if directory else None)


def test_fixture_directory_families_mtimes_and_errors():
    collector = collector_for(TEXTFILE)
    get = registry_of(collector).get_sample_value
    # A family written by two files is one family with both files' series.
    assert get("backup_last_success_timestamp_seconds", {"job": "models"}) == 1732790000
    assert get("backup_last_success_timestamp_seconds", {"job": "checkpoints"}) == 1732795000
    assert get("backup_runs_total", {"job": "models", "result": "failed"}) == 2
    # Missing labels of a family are filled in empty, as node_exporter does.
    assert get("smartmon_temperature_celsius", {"disk": "/dev/nvme0", "type": ""}) == 38
    # broken.prom does not parse and stamped.prom has timestamps: both skipped, error 1.
    assert get("node_textfile_scrape_error") == 1
    assert get("stamped_metric") is None
    families = {f.name: f for f in collector.collect()}
    mtimes = {s.labels["file"]: s.value for s in families["node_textfile_mtime_seconds"].samples}
    assert set(mtimes) == {str(TEXTFILE / "backup.prom"), str(TEXTFILE / "smart.prom")}
    assert mtimes[str(TEXTFILE / "smart.prom")] == round(
        os.stat(TEXTFILE / "smart.prom").st_mtime, 3
    )
    assert families["smartmon_temperature_celsius"].documentation == (
        f"Metric read from {TEXTFILE / 'smart.prom'}"
    )
    assert "not_read" not in families  # notes.txt is not a .prom file


def test_no_directory_is_error_0_alone_and_a_missing_one_is_error_1(tmp_path):
    unset = list(collector_for(None).collect())
    assert [(f.name, f.samples[0].value) for f in unset] == [("node_textfile_scrape_error", 0.0)]
    missing = registry_of(collector_for(tmp_path / "missing"))
    assert missing.get_sample_value("node_textfile_scrape_error") == 1


def test_good_directory_is_error_0(tmp_path):
    (tmp_path / "a.prom").write_text("# TYPE lab_up gauge\nlab_up 1\n")
    get = registry_of(collector_for(tmp_path)).get_sample_value
    assert get("lab_up") == 1
    assert get("node_textfile_scrape_error") == 0


def test_a_file_contradicting_an_earlier_one_is_skipped(tmp_path):
    (tmp_path / "a.prom").write_text("# TYPE lab_jobs gauge\nlab_jobs 3\n")
    (tmp_path / "b.prom").write_text("# TYPE lab_jobs counter\nlab_jobs_total 4\n")
    (tmp_path / "c.prom").write_text("# TYPE lab_jobs gauge\nlab_jobs 5\n")  # same series
    get = registry_of(collector_for(tmp_path)).get_sample_value
    assert get("lab_jobs") == 3
    assert get("lab_jobs_total") is None
    assert get("node_textfile_scrape_error") == 1
    assert get("node_textfile_mtime_seconds", {"file": str(tmp_path / "a.prom")}) is not None
    assert get("node_textfile_mtime_seconds", {"file": str(tmp_path / "c.prom")}) is None


def test_files_are_parsed_again_only_when_they_change(tmp_path, monkeypatch):
    path = tmp_path / "a.prom"
    path.write_text("lab_value 1\n")
    calls = []
    real = textfile.parse_textfile
    monkeypatch.setattr(textfile, "parse_textfile", lambda t, p: calls.append(p) or real(t, p))
    reader = textfile.TextfileReader(str(tmp_path))
    reader()
    reader()
    assert len(calls) == 1
    path.write_text("lab_value 22\n")
    os.utime(path, ns=(1, 3_000_000_000))
    assert reader().families[0].samples[0].value == 22
    assert len(calls) == 2


def test_directory_comes_from_the_options(tmp_path):
    (tmp_path / "a.prom").write_text("lab_up 1\n")
    options = make_options(tmp_path, textfile_directory=str(tmp_path))
    [collector] = [c for c in build_collectors(options, "linux") if c.name == "textfile"]
    assert registry_of(collector).get_sample_value("lab_up") == 1


def test_settings_default_is_null_and_paths_must_be_absolute_single_lines():
    assert ExporterSettings().textfile_directory is None
    assert ExporterSettings(textfile_directory="/var/lib/node_exporter").textfile_directory
    for bad, reason in [("relative/dir", "absolute path"), ("/a\nb", "single line")]:
        try:
            ExporterSettings(textfile_directory=bad)
        except ValueError as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
