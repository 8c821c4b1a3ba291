"""The web-config files of a TLS cluster, in exporter-toolkit's format.

node_exporter, Prometheus (`--web.config.file`), Alertmanager and minicluster's own exporter
(`--web-config`, minicluster.exporter.webconfig) all read this format. Paths are the absolute
ones of minicluster.core.layout on the node, so a file means the same wherever it is read.

- exporter-web.yml (every node): the node's certificate, and a client certificate signed by
  the cluster CA required on every connection (Prometheus' and the operator's).
- web.yml (the master; Prometheus and Alertmanager): the node's certificate and bcrypt basic
  auth for the one web user.
"""

from __future__ import annotations

from minicluster.core import layout
from minicluster.core.config import NodeSettings
from minicluster.core.controlpki import WEB_USER
from minicluster.render.yamltext import dump_yaml

EXPORTER_WEB_CONFIG = "exporter-web.yml"
SERVICE_WEB_CONFIG = "web.yml"


def exporter_web_config(node: NodeSettings) -> str:
    """exporter-web.yml for `node`: TLS with the node's certificate, client certificates
    signed by the cluster CA required."""
    return dump_yaml(
        {
            "tls_server_config": {
                "cert_file": layout.tls_path(node, "node.crt"),
                "key_file": layout.tls_path(node, "node.key"),
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": layout.tls_path(node, "ca.crt"),
            }
        },
        header="Rendered by minicluster: the exporter's TLS, client certificates required.",
    )


def service_web_config(password_hash: str, master: NodeSettings | None = None) -> str:
    """web.yml for Prometheus and Alertmanager: TLS with the master's certificate and basic
    auth of the web user, whose password only `password_hash` (bcrypt) is written here.

    Without `master` the certificate names are relative, which the services read relative to
    web.yml itself: it sits in the same tls folder."""
    if not password_hash.startswith(("$2a$", "$2b$", "$2y$")):
        raise ValueError("the web password must be given as its bcrypt hash")

    def path(name: str) -> str:
        return layout.tls_path(master, name) if master is not None else name

    return dump_yaml(
        {
            "tls_server_config": {"cert_file": path("node.crt"), "key_file": path("node.key")},
            "basic_auth_users": {WEB_USER: password_hash},
        },
        header="Rendered by minicluster: Prometheus' and Alertmanager's TLS and basic auth.",
    )
