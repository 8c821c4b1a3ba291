"""Ports for the demo: keep the local profile's, move the ones something else holds.

On a real Debian or Ubuntu, `apt-get install prometheus` also starts Debian's own
Prometheus (9090), node exporter (9100) and Alertmanager (9093) under systemd, exactly
the local profile's ports. The demo then moves its services to free ports and says so,
rather than failing or scraping the wrong Prometheus.
"""

from __future__ import annotations

import random
import socket

from minicluster.core.config import Config, parse_config


def port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers themselves bind: a port left in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


# Ports are drawn below the ephemeral range (Linux: 32768-60999, macOS: 49152-65535).
# A port the kernel hands out for `bind(0)` is an ephemeral one, which the outgoing
# connections and gloo's listeners of a starting job also draw from: one of them can take
# it between the check and the server's own bind.
PORT_RANGE = range(20000, 32768)
_handed_out: set[int] = set()  # never the same port twice from one process


def free_port_block(count: int, address: str = "127.0.0.1", avoid: set[int] = frozenset()) -> int:
    """The first of `count` consecutive free ports, none of them in `avoid`."""
    for _ in range(200):
        base = random.randrange(PORT_RANGE.start, PORT_RANGE.stop - count + 1)
        block = range(base, base + count)
        if avoid.intersection(block) or _handed_out.intersection(block):
            continue
        if all(port_free(address, port) for port in block):
            _handed_out.update(block)
            return base
    raise OSError(
        f"no {count} consecutive free TCP ports on {address} in "
        f"{PORT_RANGE.start}-{PORT_RANGE.stop - 1}"
    )


def busy_ports(config: Config) -> list[tuple[str, int]]:
    """(what, port) for every port of the config that something already listens on."""
    return [(what, port) for what, address, port in _claims(config) if not port_free(address, port)]


def _claims(config: Config) -> list[tuple[str, str, int]]:
    master = config.master.address
    claims = [
        ("prometheus.port", master, config.prometheus.port),
        ("alertmanager.port", master, config.alertmanager.port),
        ("grafana.port", master, config.grafana.port),
        ("trainer.rendezvous_port", master, config.trainer.rendezvous_port),
    ]
    for i, node in enumerate(config.nodes):
        claims.append((f"nodes[{i}].exporter_port", node.address, node.exporter_port))
        for port in config.rank_ports(node):
            claims.append((f"nodes[{i}].metrics_base_port", node.address, port))
    return claims


def with_free_ports(config: Config, source: str) -> tuple[Config, list[str]]:
    """The same config with every busy port replaced by a free one, and a note per move."""
    data = config.model_dump(mode="json")
    taken = {port for _, _, port in _claims(config)}
    notes = []

    def replace(count: int, address: str, old: int, what: str) -> int:
        new = free_port_block(count, address, taken)
        taken.update(range(new, new + count))
        notes.append(f"{what} {old} is in use here; the demo uses {new} instead")
        return new

    master = config.master.address
    for section in ("prometheus", "alertmanager", "grafana"):
        port = data[section]["port"]
        if not port_free(master, port):
            data[section]["port"] = replace(1, master, port, f"{section} port")
    port = data["trainer"]["rendezvous_port"]
    if not port_free(master, port):
        data["trainer"]["rendezvous_port"] = replace(1, master, port, "rendezvous port")
    for i, node in enumerate(config.nodes):
        if not port_free(node.address, node.exporter_port):
            data["nodes"][i]["exporter_port"] = replace(
                1, node.address, node.exporter_port, f"{node.name} exporter port"
            )
        ranks = config.rank_ports(node)
        if not all(port_free(node.address, p) for p in ranks):
            data["nodes"][i]["metrics_base_port"] = replace(
                len(ranks), node.address, ranks.start, f"{node.name} trainer metrics port"
            )
    return parse_config(data, source), notes
