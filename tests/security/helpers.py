"""A three-node cluster config and file snapshots for the PKI tests."""

from __future__ import annotations

from pathlib import Path

from minicluster.core.config import Config, parse_config

# Node name -> address: an IP, a host name and a loopback address, one of each SAN kind.
NODES = {"mini-red": "10.20.0.5", "mini-yellow": "mini-yellow.lan", "mini-blue": "127.0.0.1"}


def cluster_config(pki_dir: Path, nodes: dict[str, str] = NODES) -> Config:
    data = {
        "cluster": {"name": "lab"},
        "security": {"pki_dir": str(pki_dir)},
        "nodes": [
            {"name": name, "address": address, "role": role, "ssh_user": "mini"}
            for (name, address), role in zip(
                nodes.items(), ["master", *["worker"] * (len(nodes) - 1)], strict=True
            )
        ],
    }
    return parse_config(data, "<test>")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
