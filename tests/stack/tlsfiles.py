"""A node's tls folder for tests that read the rendered TLS files: made by the cluster PKI
itself (minicluster.security), under the test's own folders."""

from __future__ import annotations

from pathlib import Path

from minicluster.core.config import Config, NodeSettings, parse_config
from minicluster.security.files import node_tls_files
from minicluster.security.pki import ensure_pki


def install_tls(config: Config, node: NodeSettings) -> None:
    """Write what deploy would put in `node`'s tls folder (config.security.pki_dir and the
    node's install_dir must be the test's own)."""
    for path, (data, mode) in node_tls_files(config, node, ensure_pki(config)).items():
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        Path(path).write_bytes(data)
        Path(path).chmod(mode)


def write_node_tls(tls_dir: Path) -> None:
    """ca.crt, node.crt and node.key (with the rest of a master's files) in `tls_dir`, the
    tls folder of mini-red on 127.0.0.1 installed in its parent."""
    config = parse_config(
        {
            "security": {"pki_dir": str(tls_dir.parent / "pki")},
            "nodes": [
                {
                    "name": "mini-red",
                    "address": "127.0.0.1",
                    "role": "master",
                    "ssh_user": "admin",
                    "install_dir": str(tls_dir.parent),
                }
            ],
        },
        "<test>",
    )
    install_tls(config, config.master)
