"""What deploy installs in each node's tls folder, read from the control machine's PKI."""

from __future__ import annotations

from pathlib import Path

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.core.controlpki import MissingCredentials
from minicluster.render.webconfig import (
    EXPORTER_WEB_CONFIG,
    SERVICE_WEB_CONFIG,
    exporter_web_config,
    service_web_config,
)
from minicluster.security.pki import Pki
from minicluster.security.privatefile import PRIVATE, PUBLIC


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MissingCredentials(
            "config", "security.pki_dir", f"{path} is missing: `make deploy` creates it"
        ) from None


def node_tls_files(config: Config, node: NodeSettings, pki: Pki) -> dict[str, tuple[bytes, int]]:
    """Remote path -> (content, mode) of every file in `node`'s tls folder.

    Every node: the CA, its own certificate and key, and the exporter's web-config. The
    master also: Prometheus' client certificate and key (its scrapes), the web password
    (Prometheus' self-scrape and alerting read it as password_file) and web.yml for
    Prometheus and Alertmanager, which holds the password's bcrypt hash.
    """
    files = {
        "ca.crt": (_read(pki.ca_cert), PUBLIC),
        "node.crt": (_read(pki.node_cert(node.name)), PUBLIC),
        "node.key": (_read(pki.node_key(node.name)), PRIVATE),
        EXPORTER_WEB_CONFIG: (exporter_web_config(node).encode(), PUBLIC),
    }
    if node.name == config.master.name:
        files |= {
            "prometheus-client.crt": (_read(pki.client_cert("prometheus")), PUBLIC),
            "prometheus-client.key": (_read(pki.client_key("prometheus")), PRIVATE),
            "web-password": (pki.password().encode(), PRIVATE),
            SERVICE_WEB_CONFIG: (service_web_config(pki.password_hash(), node).encode(), PRIVATE),
        }
    return {layout.tls_path(node, name): content for name, content in files.items()}
