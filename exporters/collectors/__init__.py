"""The collectors, one per module; importing this package registers them all."""

from minicluster.exporter.collectors import (  # noqa: F401  (imported to register)
    boottime,
    cpu,
    diskstats,
    filesystem,
    gpu,
    loadavg,
    meminfo,
    memory_pressure,
    netclass,
    netdev,
    peers,
    process,
    thermal,
    time,
    uname,
    vmstat,
)
