"""The exporter's collector names, which config.yaml may disable.

The exporter registers one collector per name (minicluster.exporter.registry); a test keeps
the two the same. The list lives here so the config model can check
`exporter.disabled_collectors` without importing the exporter.
"""

COLLECTOR_NAMES = frozenset(
    {
        "arp",
        "boottime",
        "conntrack",
        "cpu",
        "diskstats",
        "entropy",
        "filefd",
        "filesystem",
        "gpu",
        "loadavg",
        "meminfo",
        "memory_pressure",
        "netclass",
        "netdev",
        "netstat",
        "os",
        "peers",
        "pressure",
        "process",
        "schedstat",
        "selinux",
        "sockstat",
        "softnet",
        "stat",
        "textfile",
        "thermal",
        "time",
        "timex",
        "udp_queues",
        "uname",
        "vmstat",
    }
)
