"""Reuse a certificate on disk while it is still good; otherwise issue it anew."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from minicluster.core.config import ConfigError
from minicluster.security import certs
from minicluster.security.privatefile import PUBLIC, tighten, write_file

T = TypeVar("T")
Ca = tuple[x509.Certificate, certs.Key]


def _load(path: Path, loader: Callable[[bytes], T]) -> T | None:
    """The parsed PEM at `path`, or None when it is missing or not readable as PEM."""
    try:
        return loader(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def ensure_ca(cert_path: Path, key_path: Path, cluster_name: str, now: dt.datetime) -> Ca:
    """The cluster CA: reused when both files are there, created when either is missing."""
    tighten(key_path)
    if cert_path.exists() and key_path.exists():
        cert, key = _load(cert_path, certs.load_cert), _load(key_path, certs.load_key)
        if cert is None or key is None or cert.public_key() != key.public_key():
            # Replacing it would silently orphan every certificate the nodes hold.
            raise ConfigError(
                "config",
                "security.pki_dir",
                f"{cert_path} and {key_path} are unreadable or do not match; delete "
                f"{cert_path.parent} to start a new cluster CA",
            )
        return cert, key
    key = certs.new_key()
    cert = certs.issue_ca(key, cluster_name, now)
    write_file(key_path, certs.key_pem(key))
    write_file(cert_path, certs.cert_pem(cert), PUBLIC)
    return cert, key


def ensure_leaf(
    cert_path: Path,
    key_path: Path,
    ca: Ca,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    now: dt.datetime,
) -> bool:
    """Keep the certificate while `certs.still_good`; else issue it (and a key if none).

    Returns True when it was (re)issued.
    """
    tighten(key_path)
    key = _load(key_path, certs.load_key)
    cert = _load(cert_path, certs.load_cert)
    if key is not None and cert is not None and certs.still_good(cert, key, ca[0], now, sans):
        return False
    if key is None:
        key = certs.new_key()
        write_file(key_path, certs.key_pem(key))
    cert = certs.issue_leaf(ca[0], ca[1], key, common_name, usage, sans, now)
    write_file(cert_path, certs.cert_pem(cert), PUBLIC)
    return True
