"""The cluster PKI on the control machine: creating its files.

The paths (`Pki`, `pki_paths`, re-exported here) are minicluster.core.controlpki's, which
every client reads; this module creates what they name. Folders are 0700 and every key and
password file 0600 from its first byte.
"""

from __future__ import annotations

import datetime as dt

from minicluster.core.config import Config, ConfigError
from minicluster.core.controlpki import CLIENTS, Pki, pki_paths
from minicluster.core.repository import inside_repository
from minicluster.security.credentials import ensure_web_password
from minicluster.security.privatefile import private_dir

__all__ = ["Pki", "ensure_pki", "pki_paths"]


def ensure_pki(config: Config, now: dt.datetime | None = None) -> Pki:
    """Create what is missing or due, reuse the rest byte for byte.

    The CA is reused whenever both its files are there. A node's certificate is reissued
    when its names differ from what the node needs now, it has less than 30 days left, or
    it was not signed by this CA; likewise the client certificates.
    """
    pki = pki_paths(config)
    if inside_repository(pki.root):
        raise ConfigError(
            "config",
            "security.pki_dir",
            f"{pki.root} is inside the repository; keep the cluster CA outside it",
        )
    # cryptography is in the control extra: the Minis, which only read paths, lack it.
    from minicluster.security import certs, issue

    now = now or dt.datetime.now(dt.UTC)
    # The folder above may be one the user keeps other things in: created 0700, not changed.
    pki.root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (pki.root, pki.nodes_dir, pki.clients_dir):
        private_dir(folder)
    ca = issue.ensure_ca(pki.ca_cert, pki.ca_key, config.cluster.name, now)
    for node in config.nodes:
        sans = certs.node_sans(node)
        leaf = pki.node_cert(node.name), pki.node_key(node.name)
        issue.ensure_leaf(*leaf, ca, node.name, certs.SERVER, sans, now)
    for who, common_name in CLIENTS.items():
        leaf = pki.client_cert(who), pki.client_key(who)
        issue.ensure_leaf(*leaf, ca, common_name, certs.CLIENT, [], now)
    ensure_web_password(pki)
    return pki
