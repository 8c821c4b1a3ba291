"""timex (Linux): the kernel clock discipline, from adjtimex(2) with no modes set.

`node_timex_sync_status` (0 when the kernel says the clock is unsynchronised), the offset,
frequency adjustment, error estimates, status bits and the PPS counters, with
node_exporter's names and units. The call only reads (modes 0), so it needs no privilege.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minicluster.exporter.collectors.base import LINUX_ONLY, Collector, register
from minicluster.exporter.collectors.families import single

STA_NANO = 0x2000  # offset and jitter in ns rather than µs (<sys/timex.h>)
TIME_ERROR = 5  # adjtimex's return value for an unsynchronised clock
PPM16FRAC = 1_000_000.0 * 65536.0  # freq, ppsfreq and stabil are ppm with a 16-bit fraction


class Timex(ctypes.Structure):
    """struct timex (<sys/timex.h>); ctypes applies the same alignment as the C compiler."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@functools.cache
def _adjtimex():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.adjtimex.argtypes = [ctypes.POINTER(Timex)]
    return libc.adjtimex


def read_adjtimex() -> tuple[dict[str, int], int]:
    """(the struct's fields, adjtimex's return value: the clock state)."""
    tx = Timex()
    state = _adjtimex()(ctypes.byref(tx))
    if state < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"adjtimex: {os.strerror(err)}")
    fields = {name: getattr(tx, name) for name, _ in Timex._fields_ if name != "_reserved"}
    return fields, state


# name -> (help, counter?, value from the fields and the offset divisor)
METRICS = {
    "sync_status": ("Is clock synchronized to a reliable server (1 = yes, 0 = no).", False),
    "offset_seconds": ("Time offset in between local system and reference clock.", False),
    "frequency_adjustment_ratio": ("Local clock frequency adjustment.", False),
    "maxerror_seconds": ("Maximum error in seconds.", False),
    "estimated_error_seconds": ("Estimated error in seconds.", False),
    "status": ("Value of the status array bits.", False),
    "loop_time_constant": ("Phase-locked loop time constant.", False),
    "tick_seconds": ("Seconds between clock ticks.", False),
    "pps_frequency_hertz": ("Pulse per second frequency.", False),
    "pps_jitter_seconds": ("Pulse per second jitter.", False),
    "pps_shift_seconds": ("Pulse per second interval duration.", False),
    "pps_stability_hertz": (
        "Pulse per second stability, average of recent frequency changes.",
        False,
    ),
    "pps_jitter_total": ("Pulse per second count of jitter limit exceeded events.", True),
    "pps_calibration_total": ("Pulse per second count of calibration intervals.", True),
    "pps_error_total": ("Pulse per second count of calibration errors.", True),
    "pps_stability_exceeded_total": (
        "Pulse per second count of stability limit exceeded events.",
        True,
    ),
    "tai_offset_seconds": ("International Atomic Time (TAI) offset.", False),
}


def decode(fields: dict[str, int], state: int) -> dict[str, float]:
    """adjtimex's raw fields -> node_exporter's values (seconds, ratios, hertz)."""
    divisor = 1e9 if fields["status"] & STA_NANO else 1e6
    return {
        "sync_status": 0.0 if state == TIME_ERROR else 1.0,
        "offset_seconds": fields["offset"] / divisor,
        "frequency_adjustment_ratio": 1 + fields["freq"] / PPM16FRAC,
        "maxerror_seconds": fields["maxerror"] / 1e6,
        "estimated_error_seconds": fields["esterror"] / 1e6,
        "status": float(fields["status"]),
        "loop_time_constant": float(fields["constant"]),
        "tick_seconds": fields["tick"] / 1e6,
        "pps_frequency_hertz": fields["ppsfreq"] / PPM16FRAC,
        "pps_jitter_seconds": fields["jitter"] / divisor,
        "pps_shift_seconds": float(fields["shift"]),
        "pps_stability_hertz": fields["stabil"] / PPM16FRAC,
        "pps_jitter_total": float(fields["jitcnt"]),
        "pps_calibration_total": float(fields["calcnt"]),
        "pps_error_total": float(fields["errcnt"]),
        "pps_stability_exceeded_total": float(fields["stbcnt"]),
        "tai_offset_seconds": float(fields["tai"]),
    }


@register
class TimexCollector(Collector):
    name = "timex"
    platforms = LINUX_ONLY

    def default_source(self):
        return lambda: decode(*read_adjtimex())

    def collect(self) -> Iterator[Metric]:
        values = self.source()
        for name, (help_text, counter) in METRICS.items():
            family = CounterMetricFamily if counter else GaugeMetricFamily
            yield single(family, f"node_timex_{name}", help_text, values[name])
