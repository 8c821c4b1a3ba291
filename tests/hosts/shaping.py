"""Shaped links for the simulated hosts: a token bucket (tc tbf) on each host's `en0`.

    with shaped(lan, "1gbit"):        # every host's egress limited to 1 Gbit/s
        ...

Each host's en0 sends through its own bucket, so a flow from one host to another is
limited in both directions, as on a real 1 GbE or 10 GbE link between two Minis. netem
(delay, loss) is not available on every kernel; tbf is, and the rate is what matters here.

The bucket's size (burst) is what may leave at the veth's own speed after an idle spell,
so it is kept small: 1 ms of traffic at the rate, and at least two GSO super-packets (64 KB
each, the veth passes them whole; a smaller bucket could never send one). tbf refills on
a high-resolution timer, so a burst below one timer tick still gives the full rate. The
queue (latency) holds 20 ms at the rate, above one TCP window's burst, so TCP is not
starved by tail drops.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from tests.hosts.network import HOST_INTERFACE, Lan

RATES = {"1gbit": 10**9, "10gbit": 10**10}
BURST_SECONDS = 0.001
MIN_BURST = 128 * 1024
LATENCY = "20ms"


def rate_bits(rate: str | int) -> int:
    if isinstance(rate, int):
        return rate
    if rate not in RATES:
        raise ValueError(f"link rate {rate!r}: one of {', '.join(RATES)} or bits/s")
    return RATES[rate]


def tbf_args(rate: str | int) -> list[str]:
    bits = rate_bits(rate)
    burst = max(int(bits / 8 * BURST_SECONDS), MIN_BURST)
    return ["tbf", "rate", f"{bits}bit", "burst", str(burst), "latency", LATENCY]


def _tc(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "tc", *args], capture_output=True, text=True, check=check
    )


def shape(lan: Lan, rate: str | int) -> None:
    """Limit every host's egress on en0 to `rate` ('1gbit', '10gbit' or bits/s)."""
    for netns in lan.namespaces.values():
        _tc(netns, "qdisc", "replace", "dev", HOST_INTERFACE, "root", *tbf_args(rate))


def unshape(lan: Lan) -> None:
    for netns in lan.namespaces.values():
        _tc(netns, "qdisc", "del", "dev", HOST_INTERFACE, "root", check=False)


def qdisc(lan: Lan, host: str) -> str:
    """`tc qdisc show` of a host's en0, to say what a run was shaped with."""
    return _tc(lan.namespaces[host], "qdisc", "show", "dev", HOST_INTERFACE).stdout.strip()


@contextlib.contextmanager
def shaped(lan: Lan, rate: str | int | None) -> Iterator[None]:
    """Shape the link for the block; None leaves it unshaped."""
    if rate is None:
        yield
        return
    shape(lan, rate)
    try:
        yield
    finally:
        unshape(lan)
