"""Grafana on the master: a hardened grafana.ini, provisioning files and the two secrets.

Grafana's defaults are unsafe for a LAN service: admin/admin, a public default
`secret_key`, external snapshots and usage reporting on; and they reach the internet at
start (update checks, plugin preinstall and auto-update). The rendered grafana.ini turns
those off, so Grafana starts offline with its bundled Prometheus datasource, binds to
the master's configured address, and reads the admin password and secret key with
Grafana's `$__file{}` expansion from `<install_dir>/secrets/` on the master, so no secret
is ever inside the rendered tree. The secrets themselves are generated once, on the
machine that renders, into mode-0600 files at the configured
`grafana.admin_password_file` and `grafana.secret_key_file` (outside the repository);
deploy copies them to the paths `secret_files()` names.
"""

from __future__ import annotations

import configparser
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from minicluster.core import layout
from minicluster.core.config import Config, ConfigError
from minicluster.core.controlpki import WEB_USER
from minicluster.core.repository import inside_repository
from minicluster.render.yamltext import dump_yaml

# Dashboards and the provisioned datasource agree on this uid (never on a name).
DATASOURCE_UID = "minicluster-prometheus"
FOLDER_UID = "minicluster"
FOLDER_TITLE = "minicluster"
PROVIDER_NAME = "minicluster"


@dataclass(frozen=True)
class SecretFile:
    """One secret: generated at `local` (where render runs), read by Grafana at `remote`."""

    name: str
    local: Path
    remote: str


def secret_files(config: Config) -> list[SecretFile]:
    return [
        SecretFile(
            "admin password",
            Path(config.grafana.admin_password_file).expanduser(),
            layout.secret_path(config.master, "grafana-admin-password"),
        ),
        SecretFile(
            "secret key",
            Path(config.grafana.secret_key_file).expanduser(),
            layout.secret_path(config.master, "grafana-secret-key"),
        ),
    ]


def ensure_secrets(config: Config) -> list[SecretFile]:
    """Create each missing secret (mode 0600, folder 0700); never overwrite an existing one.

    An existing file that others can read is tightened to 0600.
    """
    files = secret_files(config)
    for secret, key in zip(files, ("admin_password_file", "secret_key_file"), strict=True):
        if inside_repository(secret.local):
            raise ConfigError(
                "config", f"grafana.{key}", f"{secret.local} is inside the repository"
            )
        secret.local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if secret.local.exists():
            if secret.local.stat().st_mode & 0o077:
                secret.local.chmod(0o600)
            if not secret.local.read_text().strip():
                raise ConfigError("config", f"grafana.{key}", f"{secret.local} is empty")
            continue
        # O_EXCL: two renders at once must not both write; 0600 from the first byte.
        fd = os.open(secret.local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24 if secret.name == "admin password" else 32))
    return files


def _https(config: Config) -> dict[str, str]:
    """With security.tls Grafana serves https with the master's certificate (from the
    cluster CA, in its tls folder), so its login and session never cross the LAN in clear."""
    if not config.security.tls:
        return {}
    master = config.master
    return {
        "protocol": "https",
        "cert_file": layout.tls_path(master, "node.crt"),
        "cert_key": layout.tls_path(master, "node.key"),
        "min_tls_version": "TLS1.2",
    }


def grafana_ini(config: Config) -> str:
    master = config.master
    graf = config.grafana
    data = layout.data_dir(master, "grafana")
    password, secret_key = (f"$__file{{{s.remote}}}" for s in secret_files(config))
    sections: dict[str, dict[str, str]] = {
        "paths": {
            "data": data,
            "logs": f"{layout.log_dir(master)}/grafana",
            "plugins": f"{data}/plugins",
            "provisioning": f"{layout.stack_dir(master)}/grafana/provisioning",
        },
        "server": {
            "protocol": "http",
            "http_addr": master.address,
            "http_port": str(graf.port),
            "domain": master.address,
            **_https(config),
        },
        "database": {"type": "sqlite3", "path": "grafana.db"},
        "security": {
            "admin_user": graf.admin_user,
            "admin_password": password,
            "secret_key": secret_key,
            "disable_gravatar": "true",
            "cookie_samesite": "strict",
            "allow_embedding": "false",
            "content_security_policy": "true",
            # The login cookie only ever over https, once Grafana serves it.
            "cookie_secure": "true" if config.security.tls else "false",
        },
        "users": {"allow_sign_up": "false", "allow_org_create": "false"},
        "auth.anonymous": {"enabled": "false"},
        "snapshots": {"external_enabled": "false"},
        "public_dashboards": {"enabled": "false"},
        "analytics": {
            "reporting_enabled": "false",
            "check_for_updates": "false",
            "check_for_plugin_updates": "false",
            "feedback_links_enabled": "false",
        },
        "news": {"news_feed_enabled": "false"},
        # Grafana 12+ installs a list of plugins (the Prometheus datasource among them)
        # from grafana.com at start and replaces bundled ones with newer downloads
        # (pkg/setting/setting_plugins.go); offline that leaves a datasource "not
        # registered". The bundled plugins are all the master needs.
        "plugins": {
            "preinstall_disabled": "true",
            "preinstall_auto_update": "false",
            "public_key_retrieval_disabled": "true",
            "plugin_admin_enabled": "false",
        },
        "log": {"mode": "file", "level": "info"},
    }
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(sections)
    text = io.StringIO()
    parser.write(text)
    header = (
        f"; Rendered by `minicluster render` from the config of cluster {config.cluster.name!r}.\n"
        "; Do not edit: change config.yaml (grafana:) and render again.\n"
        "; Secrets are read from files (mode 0600) with $__file{}; none is written here.\n\n"
    )
    return header + text.getvalue().rstrip() + "\n"


def datasource_provisioning(config: Config) -> dict:
    master = config.master
    address = f"[{master.address}]" if ":" in master.address else master.address
    tls = config.security.tls
    source = {
        "name": f"Prometheus ({config.cluster.name})",
        "uid": DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": f"{'https' if tls else 'http'}://{address}:{config.prometheus.port}",
        "isDefault": True,
        "editable": False,
        "jsonData": {
            # Lets $__rate_interval cover four scrapes.
            "timeInterval": f"{config.prometheus.scrape_interval_seconds}s",
            "httpMethod": "POST",
        },
    }
    if tls:
        # Prometheus serves HTTPS with basic auth (its web.yml): Grafana logs in as the web
        # user and checks the master's certificate against the cluster CA. Both secrets are
        # read from the master's tls folder by $__file{}, never written here.
        source["basicAuth"] = True
        source["basicAuthUser"] = WEB_USER
        source["jsonData"]["tlsAuthWithCACert"] = True
        source["secureJsonData"] = {
            "basicAuthPassword": f"$__file{{{layout.tls_path(master, 'web-password')}}}",
            "tlsCACert": f"$__file{{{layout.tls_path(master, 'ca.crt')}}}",
        }
    return {"apiVersion": 1, "datasources": [source]}


def dashboard_provisioning(config: Config) -> dict:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": PROVIDER_NAME,
                "orgId": 1,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "type": "file",
                # Dashboards are code: the UI may not change or delete them.
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {
                    "path": f"{layout.stack_dir(config.master)}/grafana/dashboards",
                    "foldersFromFilesStructure": False,
                },
            }
        ],
    }


def provisioning_files(config: Config) -> dict[str, str]:
    """Path below grafana/provisioning/ -> YAML text."""
    header = f"Rendered by `minicluster render` from the config of cluster {config.cluster.name!r}."
    return {
        "datasources/prometheus.yaml": dump_yaml(datasource_provisioning(config), header),
        "dashboards/minicluster.yaml": dump_yaml(dashboard_provisioning(config), header),
    }
