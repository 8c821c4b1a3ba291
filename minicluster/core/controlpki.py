"""The control machine's PKI files as its clients read them, and the web user's name.

minicluster.security creates these files at deploy (its `pki_paths` names the same paths; a
test pins the two together). The core keeps the few a client reads, so that every reader of
Prometheus or an exporter (status, top, report, run-job) finds them without depending on
the component that writes them:

    P = expanduser(security.pki_dir) / <cluster.name>
    P/ca.crt                         the cluster CA: every server certificate is checked with it
    P/web-password                   the password of WEB_USER on Prometheus and Alertmanager
    P/clients/operator.crt, .key     the client certificate the CLI reads exporters with
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minicluster.core.config import Config, ConfigError

# The one user of Prometheus' and Alertmanager's basic auth (their web.yml).
WEB_USER = "minicluster"


class MissingCredentials(ConfigError):
    """A PKI file a client needs is not there: one line naming it and what creates it
    (the CLI prints ConfigErrors as they are and exits 2)."""


@dataclass(frozen=True)
class ClientCredentials:
    """What the control machine's clients present and check when security.tls is on."""

    root: Path

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    @property
    def password_file(self) -> Path:
        return self.root / "web-password"

    @property
    def operator_cert(self) -> Path:
        return self.root / "clients" / "operator.crt"

    @property
    def operator_key(self) -> Path:
        return self.root / "clients" / "operator.key"

    def require(self, *paths: Path) -> None:
        """Raise MissingCredentials naming the first of `paths` that is not a file."""
        for path in paths:
            if not path.is_file():
                raise MissingCredentials(
                    "config",
                    "security.pki_dir",
                    f"{path} is missing: run `make deploy`, which creates the cluster's "
                    f"certificates and web password in {self.root}",
                )

    def password(self) -> str:
        self.require(self.password_file)
        return self.password_file.read_text().strip()


def client_credentials(config: Config) -> ClientCredentials:
    """The PKI files of `config`'s cluster on this machine (nothing is created or read)."""
    return ClientCredentials(Path(config.security.pki_dir).expanduser() / config.cluster.name)
