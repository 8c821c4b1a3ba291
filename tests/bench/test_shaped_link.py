"""Shaped links between two simulated hosts measure at their configured rate."""

from __future__ import annotations

import pytest

from tests.bench.netns import lan_pair, tcp_probe
from tests.hosts.fixtures import check_prerequisites
from tests.hosts.shaping import qdisc, rate_bits, shaped

pytestmark = pytest.mark.e2e


def test_a_1_gbit_link_measures_within_10_percent_of_its_rate(record_property):
    check_prerequisites()
    with lan_pair() as lan, shaped(lan, "1gbit"):
        assert "tbf" in qdisc(lan, "mini-red") and "rate 1Gbit" in qdisc(lan, "mini-red")
        measured = tcp_probe(lan, seconds=3.0)
    bits = measured.bytes_per_second * 8
    record_property("tcp_bits_per_second", bits)
    assert bits == pytest.approx(rate_bits("1gbit"), rel=0.10)


def test_a_10_gbit_link_never_exceeds_its_rate_and_unshaped_is_faster(record_property):
    """At 10 Gbit/s one TCP stream may be CPU-bound on a small machine: the probe must not
    pass the rate, and the same pair without the shaper must be at least as fast."""
    check_prerequisites()
    with lan_pair() as lan:
        with shaped(lan, "10gbit"):
            shaped_bits = tcp_probe(lan, seconds=3.0).bytes_per_second * 8
        assert "tbf" not in qdisc(lan, "mini-red")
        free_bits = tcp_probe(lan, seconds=3.0).bytes_per_second * 8
    record_property("tcp_bits_per_second_10gbit", shaped_bits)
    record_property("tcp_bits_per_second_unshaped", free_bits)
    print(f"10 Gbit shaped: {shaped_bits / 1e9:.2f} Gbit/s; unshaped {free_bits / 1e9:.2f}")
    assert shaped_bits <= rate_bits("10gbit") * 1.10
    assert free_bits >= 0.8 * min(shaped_bits, rate_bits("10gbit"))
