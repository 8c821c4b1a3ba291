"""The exporter's collector names, which config.yaml may disable.

The exporter registers one collector per name (minicluster.exporter.registry); a test keeps
the two the same. The list lives here so the config model can check
`exporter.disabled_collectors` without importing the exporter.
"""

COLLECTOR_NAMES = frozenset(
    {
        "boottime",
        "cpu",
        "diskstats",
        "filesystem",
        "gpu",
        "loadavg",
        "meminfo",
        "memory_pressure",
        "netclass",
        "netdev",
        "peers",
        "process",
        "thermal",
        "time",
        "uname",
        "vmstat",
    }
)
