"""The rendered web-config files: read by the exporter and by Prometheus' own checker."""

from __future__ import annotations

import ssl
import subprocess

import bcrypt
import pytest
import yaml

from minicluster.core import layout
from minicluster.core.config import NodeSettings
from minicluster.exporter.webconfig import load_web_config
from minicluster.render.webconfig import exporter_web_config, service_web_config
from tests.stack.tlsfiles import write_node_tls
from tests.support import require_tool


def _node(tmp_path, role="master") -> NodeSettings:
    return NodeSettings(name="mini-red", address="127.0.0.1", role=role, ssh_user="admin",
                        install_dir=str(tmp_path / "node"))  # fmt: skip


def _write(node: NodeSettings, name: str, text: str) -> str:
    path = layout.tls_path(node, name)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def test_exporter_web_config_requires_client_certificates_by_absolute_paths(tmp_path):
    node = _node(tmp_path, role="worker")
    tls = tmp_path / "node" / "tls"
    write_node_tls(tls)
    text = exporter_web_config(node)
    assert yaml.safe_load(text) == {
        "tls_server_config": {
            "cert_file": f"{tls}/node.crt",
            "key_file": f"{tls}/node.key",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": f"{tls}/ca.crt",
        }
    }
    # The exporter's own reader loads it: TLS with client certificates required, no basic auth.
    context, auth = load_web_config(_write(node, "exporter-web.yml", text))
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert auth is None


def test_service_web_config_passes_promtool_and_holds_only_the_hash(tmp_path):
    promtool = require_tool("promtool", "apt-get install prometheus (Homebrew: prometheus)")
    node = _node(tmp_path)
    tls = tmp_path / "node" / "tls"
    write_node_tls(tls)
    password = "correct horse battery staple"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    text = service_web_config(hashed, node)
    assert password not in text
    assert yaml.safe_load(text) == {
        "tls_server_config": {"cert_file": f"{tls}/node.crt", "key_file": f"{tls}/node.key"},
        "basic_auth_users": {"minicluster": hashed},
    }
    path = _write(node, "web.yml", text)
    check = subprocess.run([promtool, "check", "web-config", path], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout + check.stderr
    # Without the master, the certificate names are relative to web.yml, which sits beside them.
    bare = service_web_config(hashed)
    assert yaml.safe_load(bare)["tls_server_config"] == {
        "cert_file": "node.crt",
        "key_file": "node.key",
    }
    check = subprocess.run(
        [promtool, "check", "web-config", _write(node, "web.yml", bare)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_service_web_config_refuses_a_plain_password():
    with pytest.raises(ValueError, match="bcrypt hash"):
        service_web_config("hunter2")
