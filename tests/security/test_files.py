"""The files deploy installs in each node's tls folder."""

from __future__ import annotations

from pathlib import PurePosixPath

import bcrypt
import pytest
import yaml

from minicluster.core import layout
from minicluster.core.config import ConfigError
from minicluster.security.credentials import WEB_USER
from minicluster.security.files import node_tls_files
from minicluster.security.pki import pki_paths

EVERY_NODE = {"ca.crt": 0o644, "node.crt": 0o644, "node.key": 0o600, "exporter-web.yml": 0o644}
MASTER_ONLY = {
    "prometheus-client.crt": 0o644,
    "prometheus-client.key": 0o600,
    "web-password": 0o600,
    "web.yml": 0o600,
}


def by_name(files: dict[str, tuple[bytes, int]], node) -> dict[str, tuple[bytes, int]]:
    folder = PurePosixPath(layout.tls_dir(node))
    assert {PurePosixPath(path).parent for path in files} == {folder}
    return {PurePosixPath(path).name: entry for path, entry in files.items()}


def referenced_paths(web_config: dict) -> set[str]:
    tls = web_config["tls_server_config"]
    return {value for key, value in tls.items() if key.endswith("_file")}


def test_every_node_gets_the_ca_its_own_certificate_and_the_exporters_web_config(config, pki):
    for name in ("mini-yellow", "mini-blue"):
        node = config.node(name)
        files = by_name(node_tls_files(config, node, pki), node)
        assert {n: mode for n, (_, mode) in files.items()} == EVERY_NODE
        assert files["ca.crt"][0] == pki.ca_cert.read_bytes()
        assert files["node.crt"][0] == pki.node_cert(name).read_bytes()
        assert files["node.key"][0] == pki.node_key(name).read_bytes()
        web = yaml.safe_load(files["exporter-web.yml"][0])
        assert web["tls_server_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
        # Every file the web-config names is one deploy ships beside it.
        assert referenced_paths(web) == {
            layout.tls_path(node, n) for n in ("ca.crt", "node.crt", "node.key")
        }


def test_the_master_also_gets_prometheus_credentials_and_the_services_web_config(config, pki):
    master = config.master
    files = by_name(node_tls_files(config, master, pki), master)
    assert {n: mode for n, (_, mode) in files.items()} == EVERY_NODE | MASTER_ONLY
    assert files["node.crt"][0] == pki.node_cert("mini-red").read_bytes()
    assert files["prometheus-client.crt"][0] == pki.client_cert("prometheus").read_bytes()
    assert files["prometheus-client.key"][0] == pki.client_key("prometheus").read_bytes()
    password = files["web-password"][0]
    assert password == pki.password().encode() and b"\n" not in password
    web = yaml.safe_load(files["web.yml"][0])
    assert list(web["basic_auth_users"]) == [WEB_USER]
    assert bcrypt.checkpw(password, web["basic_auth_users"][WEB_USER].encode())
    assert referenced_paths(web) == {layout.tls_path(master, n) for n in ("node.crt", "node.key")}
    # The stored hash makes the files the same on every deploy: nothing to restart.
    assert node_tls_files(config, master, pki) == node_tls_files(config, master, pki)


def test_a_missing_pki_is_one_line_saying_to_deploy(config):
    with pytest.raises(ConfigError) as missing:
        node_tls_files(config, config.master, pki_paths(config))
    message = str(missing.value)
    assert message.startswith("config: security.pki_dir: ") and "\n" not in message
    assert "ca.crt is missing" in message and "make deploy" in message
