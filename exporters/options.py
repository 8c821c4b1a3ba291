"""What one exporter process needs to know, resolved from config.yaml or built-in defaults."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from minicluster.core import layout
from minicluster.core.config import Config, ConfigError, ExporterSettings, NodeSettings
from minicluster.core.profiles import default_state_dir
from minicluster.exporter.collectors.peers import Peer

# Without a config file nothing says which address is meant to be reachable: stay local.
DEFAULT_LISTEN = ("127.0.0.1", 9100)


@dataclass(frozen=True)
class Options:
    node: str
    listen_host: str
    listen_port: int
    run_dir: str
    peers: tuple[Peer, ...] = ()
    peer_probe_timeout_seconds: float = 1.0
    collector_timeout_seconds: float = 2.0
    max_concurrent_scrapes: int = 4
    web_config_file: str | None = None
    disabled_collectors: frozenset[str] = field(default_factory=frozenset)
    textfile_directory: str | None = None


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port). Port 0 lets the kernel pick one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError(f"--listen {value!r}: give the address to bind (e.g. 127.0.0.1:9100)")
    return host, int(port)


def short_hostname() -> str:
    return socket.gethostname().split(".")[0].lower()


def _local_addresses() -> set[str]:
    return {
        address.address.split("%")[0]
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


def pick_node(config: Config, name: str | None, source: str) -> NodeSettings:
    """--node, else the node named like this host, else the one node with a local address."""
    if name:
        try:
            return config.node(name)
        except KeyError as exc:
            raise ConfigError(source, "--node", exc.args[0]) from None
    by_name = [node for node in config.nodes if node.name == short_hostname()]
    if by_name:
        return by_name[0]
    local = _local_addresses()
    here = [
        node
        for node in config.nodes
        if node.ip is not None and node.address in local and not node.ip.is_loopback
    ]
    if len(here) == 1:
        return here[0]
    names = ", ".join(node.name for node in config.nodes)
    raise ConfigError(source, "--node", f"cannot tell which node this is; pass one of: {names}")


def from_config(
    config: Config,
    node: NodeSettings,
    listen: tuple[str, int] | None = None,
    disabled: frozenset[str] = frozenset(),
    web_config_file: str | None = None,
    textfile_directory: str | None = None,
) -> Options:
    settings = config.exporter
    host, port = listen or (node.address, node.exporter_port)
    peers = tuple(
        Peer(other.name, other.address, other.exporter_port)
        for other in config.nodes
        if other.name != node.name
    )
    return Options(
        node=node.name,
        listen_host=host,
        listen_port=port,
        run_dir=layout.run_dir(node),
        peers=peers,
        peer_probe_timeout_seconds=settings.peer_probe_timeout_seconds,
        collector_timeout_seconds=settings.collector_timeout_seconds,
        max_concurrent_scrapes=settings.max_concurrent_scrapes,
        web_config_file=web_config_file or settings.web_config_file,
        disabled_collectors=frozenset(settings.disabled_collectors) | disabled,
        textfile_directory=textfile_directory or settings.textfile_directory,
    )


def defaults(
    node: str | None = None,
    listen: tuple[str, int] | None = None,
    disabled: frozenset[str] = frozenset(),
    web_config_file: str | None = None,
    textfile_directory: str | None = None,
) -> Options:
    """No config file: the built-in exporter settings, this host, the trainer's run dir."""
    settings = ExporterSettings()
    host, port = listen or DEFAULT_LISTEN
    return Options(
        node=node or short_hostname(),
        listen_host=host,
        listen_port=port,
        # The same folder a trainer started without --config registers in.
        run_dir=str(Path(default_state_dir()) / "run"),
        peer_probe_timeout_seconds=settings.peer_probe_timeout_seconds,
        collector_timeout_seconds=settings.collector_timeout_seconds,
        max_concurrent_scrapes=settings.max_concurrent_scrapes,
        web_config_file=web_config_file,
        disabled_collectors=disabled,
        textfile_directory=textfile_directory,
    )
