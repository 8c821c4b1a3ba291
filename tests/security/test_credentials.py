"""The web user's password and its stored bcrypt hash."""

from __future__ import annotations

import bcrypt
import pytest

from minicluster.core.config import ConfigError, parse_config
from minicluster.security.credentials import WEB_USER, verifies
from minicluster.security.pki import ensure_pki


def test_the_password_is_random_and_its_hash_verifies_it(tmp_path, config, pki):
    password = pki.password()
    assert WEB_USER == "minicluster"
    # token_urlsafe(24): 32 URL-safe characters, well under bcrypt's 72 bytes.
    assert len(password) == 32 and password.isascii() and "\n" not in password
    assert bcrypt.checkpw(password.encode(), pki.password_hash().encode())
    assert not bcrypt.checkpw(b"minicluster", pki.password_hash().encode())
    other = ensure_pki(
        parse_config({**config.model_dump(mode="json"), "cluster": {"name": "other"}}, "<test>")
    )
    assert other.root == tmp_path / "pki" / "other"
    assert other.password() != password


@pytest.mark.parametrize(
    "stored", [b"not a hash", bcrypt.hashpw(b"another password", bcrypt.gensalt(4))]
)
def test_a_hash_that_does_not_verify_the_password_is_written_anew(config, pki, stored):
    password = pki.password()
    pki.password_hash_file.write_bytes(stored)
    ensure_pki(config)
    assert pki.password() == password
    assert verifies(password, pki.password_hash())
    assert pki.password_hash_file.stat().st_mode & 0o777 == 0o600


def test_a_password_bcrypt_cannot_hold_is_refused_in_one_line(config, pki):
    pki.password_file.write_text("x" * 73)
    with pytest.raises(ConfigError) as refused:
        ensure_pki(config)
    assert str(refused.value) == (
        f"config: security.pki_dir: {pki.password_file} must hold one line of 1 to 72 bytes"
    )
