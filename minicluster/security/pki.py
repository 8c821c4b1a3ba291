"""The cluster PKI on the control machine: where its files are, and creating them.

P = expanduser(security.pki_dir) / <cluster.name>:

    P/ca.crt, ca.key                     the cluster CA, reused on later deploys
    P/nodes/<node>.crt, <node>.key       each node's server certificate
    P/clients/<who>.crt, <who>.key       client certificates (prometheus, operator)
    P/web-password, web-password.bcrypt  the web user's password and its hash

Folders are 0700 and every key and password file 0600 from its first byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from minicluster.core.config import Config, ConfigError
from minicluster.core.controlpki import MissingCredentials
from minicluster.core.repository import inside_repository
from minicluster.security.credentials import ensure_web_password
from minicluster.security.privatefile import private_dir

# Client certificates by the name their files carry: the subject's common name.
CLIENTS = {"prometheus": "prometheus", "operator": "minicluster-operator"}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise MissingCredentials(
            "config", "security.pki_dir", f"{path} is missing: run `make deploy`, which creates it"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("config", "security.pki_dir", f"{path} is not UTF-8 text") from None


@dataclass(frozen=True)
class Pki:
    """The paths of one cluster's PKI; reading them creates nothing."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def nodes_dir(self) -> Path:
        return self.root / "nodes"

    @property
    def clients_dir(self) -> Path:
        return self.root / "clients"

    def node_cert(self, name: str) -> Path:
        return self.nodes_dir / f"{name}.crt"

    def node_key(self, name: str) -> Path:
        return self.nodes_dir / f"{name}.key"

    def client_cert(self, who: str) -> Path:
        return self.clients_dir / f"{_client(who)}.crt"

    def client_key(self, who: str) -> Path:
        return self.clients_dir / f"{_client(who)}.key"

    @property
    def password_file(self) -> Path:
        return self.root / "web-password"

    @property
    def password_hash_file(self) -> Path:
        return self.root / "web-password.bcrypt"

    def password(self) -> str:
        return _read(self.password_file)

    def password_hash(self) -> str:
        return _read(self.password_hash_file)


def _client(who: str) -> str:
    if who not in CLIENTS:
        raise ValueError(f"no client certificate {who!r} (known: {', '.join(CLIENTS)})")
    return who


def pki_dir(config: Config) -> Path:
    """The folder holding every cluster's PKI (security.pki_dir, ~ expanded)."""
    return Path(config.security.pki_dir).expanduser()


def pki_paths(config: Config) -> Pki:
    """This cluster's PKI paths, without creating or checking anything."""
    return Pki(pki_dir(config) / config.cluster.name)


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
