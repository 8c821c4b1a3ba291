"""Log rotation for launchd's service logs: an /etc/newsyslog.d file (newsyslog.conf(5)).

launchd never rotates StandardOutPath/StandardErrorPath. One line per service log:

    <log file>  <owner>:<group>  <mode>  <count>  <size KB>  <when>  <flags>

`when` is `*` (size only), `N`: no process is signalled (no service reopens its log on a
signal, so after a rotation it writes on into the renamed file until its next restart:
the cap is approximate), `J`: archives are bzip2-compressed.
"""

from __future__ import annotations

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.render import launchd

CONF_PATH = "/etc/newsyslog.d/minicluster.conf"
SIZE_KB = 10 * 1024
ARCHIVES = 5
MODE = "640"
GROUP = "staff"  # macOS's group of every local user
FLAGS = "NJ"


def service_logs(config: Config, node: NodeSettings) -> list[str]:
    """Every log file a LaunchDaemon writes on `node`: the exporter's, and on the master
    Prometheus', Alertmanager's and Grafana's."""
    plists = [launchd.exporter_plist(config, node, layout.config_path(node))]
    if node.role == "master":
        plists += launchd.master_plists(config).values()
    return [plist[key] for plist in plists for key in ("StandardOutPath", "StandardErrorPath")]


def _field(path: str) -> str:
    # '#' starts a comment in newsyslog.conf unless escaped; config paths have no spaces.
    return path.replace("#", "\\#")


def newsyslog_conf(config: Config, node: NodeSettings) -> str:
    header = (
        f"# minicluster service logs on {node.name}: {ARCHIVES} archives of {SIZE_KB} KB each\n"
        "# logfilename  [owner:group]  mode  count  size  when  flags\n"
    )
    owner = f"{node.ssh_user}:{GROUP}"
    lines = [
        f"{_field(path)}\t{owner}\t{MODE}\t{ARCHIVES}\t{SIZE_KB}\t*\t{FLAGS}"
        for path in service_logs(config, node)
    ]
    return header + "\n".join(lines) + "\n"
