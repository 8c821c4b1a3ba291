"""Where the cluster PKI lives on the control machine, and the web user's name.

minicluster.security creates these files at deploy; every reader of Prometheus or an
exporter (status, top, report, run-job) finds them here without depending on the component
that writes them.

    P = expanduser(security.pki_dir) / <cluster.name>
    P/ca.crt, ca.key                     the cluster CA: every server certificate is checked
                                         with it; the key never leaves this machine
    P/nodes/<node>.crt, <node>.key       each node's server certificate
    P/clients/<who>.crt, <who>.key       client certificates: prometheus (its scrapes),
                                         operator (the CLI reading exporters)
    P/web-password, web-password.bcrypt  WEB_USER's password on Prometheus and Alertmanager,
                                         and its hash
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minicluster.core.config import Config, ConfigError

# The one user of Prometheus' and Alertmanager's basic auth (their web.yml).
WEB_USER = "minicluster"
# Client certificates by the name their files carry -> the subject's common name.
CLIENTS = {"prometheus": "prometheus", "operator": "minicluster-operator"}


class MissingCredentials(ConfigError):
    """A PKI file a client needs is not there: one line naming it and what creates it
    (the CLI prints ConfigErrors as they are and exits 2)."""


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

    def require(self, *paths: Path) -> None:
        """Raise MissingCredentials naming the first of `paths` that is not a file."""
        for path in paths:
            if not path.is_file():
                raise _missing(path, f"the cluster's certificates and web password in {self.root}")

    def password(self) -> str:
        return _read(self.password_file)

    def client_tls(self, who: str) -> dict:
        """requests' options for reading an exporter or a rank as `who`: its certificate,
        and the cluster CA to check the server's (MissingCredentials if one is absent)."""
        cert, key = self.client_cert(who), self.client_key(who)
        self.require(self.ca_cert, cert, key)
        return {"cert": (str(cert), str(key)), "verify": str(self.ca_cert)}

    def password_hash(self) -> str:
        return _read(self.password_hash_file)


def _client(who: str) -> str:
    if who not in CLIENTS:
        raise ValueError(f"no client certificate {who!r} (known: {', '.join(CLIENTS)})")
    return who


def _missing(path: Path, what: str = "it") -> MissingCredentials:
    return MissingCredentials(
        "config", "security.pki_dir", f"{path} is missing: run `make deploy`, which creates {what}"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise _missing(path) from None
    except UnicodeDecodeError:
        raise ConfigError("config", "security.pki_dir", f"{path} is not UTF-8 text") from None


def pki_dir(config: Config) -> Path:
    """The folder holding every cluster's PKI (security.pki_dir, ~ expanded)."""
    return Path(config.security.pki_dir).expanduser()


def pki_paths(config: Config) -> Pki:
    """This cluster's PKI paths, without creating or checking anything."""
    return Pki(pki_dir(config) / config.cluster.name)
