"""The web user of Prometheus and Alertmanager: its name, password and bcrypt hash.

The hash is stored beside the password, so rendering web.yml twice gives the same text
(bcrypt salts every hash anew).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import bcrypt

from minicluster.core.config import ConfigError
from minicluster.core.controlpki import WEB_USER
from minicluster.security.privatefile import tighten, write_file

if TYPE_CHECKING:
    from minicluster.security.pki import Pki

__all__ = ["WEB_USER", "ensure_web_password", "verifies"]
# bcrypt reads at most 72 bytes of a password (bcrypt 5 refuses longer ones).
_BCRYPT_MAX = 72


def verifies(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:  # not a bcrypt hash at all
        return False


def ensure_web_password(pki: Pki) -> None:
    """Create the password once; (re)write its hash whenever it does not verify it."""
    for path in (pki.password_file, pki.password_hash_file):
        tighten(path)
    if not pki.password_file.exists():
        write_file(pki.password_file, secrets.token_urlsafe(24).encode())
    password = pki.password()
    if not password or len(password.encode()) > _BCRYPT_MAX or "\n" in password:
        raise ConfigError(
            "config",
            "security.pki_dir",
            f"{pki.password_file} must hold one line of 1 to {_BCRYPT_MAX} bytes",
        )
    if pki.password_hash_file.exists() and verifies(password, pki.password_hash()):
        return
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
    write_file(pki.password_hash_file, hashed)
