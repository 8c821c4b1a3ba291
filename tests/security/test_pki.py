"""The cluster PKI on the control machine: private files, a chain to the cluster CA, the
names each node is reached by, and reuse across deploys."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minicluster.core.config import ConfigError
from minicluster.security import certs
from minicluster.security.pki import ensure_pki, pki_paths
from tests.security.helpers import NODES, cluster_config, snapshot
from tests.support import REPO


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def sans(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {f"IP:{n.value}" if isinstance(n, x509.IPAddress) else f"DNS:{n.value}" for n in names}


def eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def common_name(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_paths_are_read_without_creating_anything(tmp_path, config):
    paths = pki_paths(config)
    assert paths.root == tmp_path / "pki" / "lab"
    assert not (tmp_path / "pki").exists()
    assert paths.node_key("mini-red") == paths.root / "nodes" / "mini-red.key"
    assert paths.client_cert("operator") == paths.root / "clients" / "operator.crt"
    with pytest.raises(ValueError, match="grafana"):
        paths.client_cert("grafana")
    with pytest.raises(ConfigError, match=r"security\.pki_dir: .*web-password is missing"):
        paths.password()
    assert ensure_pki(config) == paths


def test_a_fresh_pki_is_private_from_the_first_byte(pki):
    for folder in (pki.root, pki.root / "nodes", pki.root / "clients"):
        assert mode(folder) == 0o700, folder
    secrets = [
        pki.ca_key,
        *(pki.node_key(name) for name in NODES),
        pki.client_key("prometheus"),
        pki.client_key("operator"),
        pki.password_file,
        pki.password_hash_file,
    ]
    assert {str(p): mode(p) for p in secrets} == {str(p): 0o600 for p in secrets}
    # Nothing half-written or temporary is left beside them.
    assert sorted(p.name for p in pki.root.rglob(".*")) == []
    assert len(snapshot(pki.root)) == 1 * 2 + len(NODES) * 2 + 2 * 2 + 2


def test_certificates_chain_to_the_cluster_ca_with_each_nodes_names(pki):
    ca = load(pki.ca_cert)
    ca.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert common_name(ca) == "lab cluster CA"
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650
    expected = {
        "mini-red": {"DNS:mini-red", "IP:10.20.0.5"},
        "mini-yellow": {"DNS:mini-yellow", "DNS:mini-yellow.lan"},
        "mini-blue": {"DNS:mini-blue", "IP:127.0.0.1", "DNS:localhost"},
    }
    for name, names in expected.items():
        cert = load(pki.node_cert(name))
        cert.verify_directly_issued_by(ca)
        assert sans(cert) == names
        assert eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
        assert dt.timedelta(days=729) < lifetime <= dt.timedelta(days=730)
        key = certs.load_key(pki.node_key(name).read_bytes())
        assert key.public_key() == cert.public_key()
    for who, cn in (("prometheus", "prometheus"), ("operator", "minicluster-operator")):
        cert = load(pki.client_cert(who))
        cert.verify_directly_issued_by(ca)
        assert common_name(cert) == cn
        assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_second_run_reuses_every_file_byte_for_byte(config, pki):
    before = snapshot(pki.root)
    ensure_pki(config)
    assert snapshot(pki.root) == before


def test_a_changed_address_reissues_only_that_nodes_certificate(tmp_path, pki):
    before = snapshot(pki.root)
    moved = cluster_config(tmp_path / "pki", {**NODES, "mini-red": "10.20.0.9"})
    ensure_pki(moved)
    after = snapshot(pki.root)
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["nodes/mini-red.crt"]
    assert sans(load(pki.node_cert("mini-red"))) == {"DNS:mini-red", "IP:10.20.0.9"}
    load(pki.node_cert("mini-red")).verify_directly_issued_by(load(pki.ca_cert))


@pytest.mark.parametrize(("days_left", "reissued"), [(29, True), (31, False)])
def test_a_certificate_is_reissued_30_days_before_it_ends(config, pki, days_left, reissued):
    ca = load(pki.ca_cert), certs.load_key(pki.ca_key.read_bytes())
    key = certs.load_key(pki.node_key("mini-yellow").read_bytes())
    node = config.node("mini-yellow")
    now = dt.datetime.now(dt.UTC)
    # Issued a day ago, it ends `days_left` days from now.
    short = certs.issue_leaf(
        *ca,
        key,
        node.name,
        certs.SERVER,
        certs.node_sans(node),
        now - dt.timedelta(days=1),
        days_left + 1,
    )
    pki.node_cert("mini-yellow").write_bytes(certs.cert_pem(short))
    before = snapshot(pki.root)
    ensure_pki(config)
    after = snapshot(pki.root)
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == (["nodes/mini-yellow.crt"] if reissued else [])
    left = load(pki.node_cert("mini-yellow")).not_valid_after_utc - now
    assert round(left / dt.timedelta(days=1)) == (730 if reissued else days_left)


def test_deleting_one_nodes_files_rotates_that_node_only(config, pki):
    before = snapshot(pki.root)
    pki.node_cert("mini-red").unlink()
    pki.node_key("mini-red").unlink()
    ensure_pki(config)
    after = snapshot(pki.root)
    assert sorted(n for n in before if before[n] != after[n]) == [
        "nodes/mini-red.crt",
        "nodes/mini-red.key",
    ]


def test_a_new_ca_reissues_every_certificate_and_keeps_the_password(config, pki):
    before = snapshot(pki.root)
    pki.ca_cert.unlink()
    pki.ca_key.unlink()
    ensure_pki(config)
    after = snapshot(pki.root)
    changed = {n for n in before if before[n] != after[n]}
    certificates = {n for n in before if n.endswith(".crt")}
    assert changed == certificates | {"ca.key"}
    ca = load(pki.ca_cert)
    for name in certificates - {"ca.crt"}:
        load(pki.root / name).verify_directly_issued_by(ca)


def test_a_loose_key_is_tightened_and_kept(config, pki):
    before = snapshot(pki.root)
    pki.ca_key.chmod(0o644)
    pki.node_key("mini-blue").chmod(0o640)
    pki.password_file.chmod(0o604)
    ensure_pki(config)
    assert mode(pki.ca_key) == mode(pki.node_key("mini-blue")) == 0o600
    assert mode(pki.password_file) == 0o600
    assert snapshot(pki.root) == before


def test_a_ca_key_that_does_not_match_its_certificate_is_refused(config, pki):
    other = certs.key_pem(certs.new_key())
    os.chmod(pki.ca_key, 0o600)
    pki.ca_key.write_bytes(other)
    with pytest.raises(ConfigError) as refused:
        ensure_pki(config)
    assert str(refused.value).startswith("config: security.pki_dir: ")
    assert "do not match" in str(refused.value)
    assert pki.ca_key.read_bytes() == other


def test_a_pki_dir_inside_the_repository_is_refused_in_one_line(tmp_path):
    inside = REPO / "build" / "pki-test"
    with pytest.raises(ConfigError) as refused:
        ensure_pki(cluster_config(inside))
    message = str(refused.value)
    assert (
        message == f"config: security.pki_dir: {inside / 'lab'} is inside the repository; "
        "keep the cluster CA outside it"
    )
    assert "\n" not in message
    assert not inside.exists()


def test_a_pki_dir_given_with_a_tilde_is_below_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pki = ensure_pki(cluster_config(Path("~/.config/minicluster/pki")))
    assert pki.root == tmp_path / "home" / ".config" / "minicluster" / "pki" / "lab"
    assert ipaddress.ip_address("10.20.0.5") in {
        n.value
        for n in load(pki.node_cert("mini-red"))
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    }
