"""TLS and basic auth from a web-config file, in the format node_exporter's exporter-toolkit
reads (`--web.config.file`), so one file serves both exporters:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Keys this exporter does not implement are refused rather than silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import ssl
import threading
from pathlib import Path
from typing import Literal

import bcrypt
from pydantic import BaseModel, ConfigDict, ValidationError

from minicluster.core.config import ConfigError, key_path, read_yaml

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
AUTH_CACHE_SIZE = 128
BCRYPT_MAX_PASSWORD_BYTES = 72
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class TLSServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: str
    key_file: str
    client_auth_type: Literal[
        "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
    ] = "NoClientCert"
    client_ca_file: str | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None


def load_web_config(path: str | Path) -> tuple[ssl.SSLContext | None, BasicAuth | None]:
    """The TLS context and the authenticator a web-config file asks for (either may be None)."""
    source = str(path)
    # The same reader as config.yaml: size cap, UTF-8 only, nesting and alias limits.
    data = read_yaml(path, source) or {}
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        unknown = error["type"] == "extra_forbidden"
        reason = "unknown or unsupported key" if unknown else error["msg"]
        raise ConfigError(source, key_path(error["loc"]), reason) from None
    base = Path(path).parent
    context = None
    if config.tls_server_config:
        context = tls_context(config.tls_server_config, base, source)
    auth = None
    if config.basic_auth_users:
        for user, hashed in config.basic_auth_users.items():
            reason = bcrypt_hash_problem(hashed)
            if reason:
                raise ConfigError(source, f"basic_auth_users.{user}", reason)
        auth = BasicAuth(config.basic_auth_users)
    return context, auth


def bcrypt_hash_problem(hashed: str) -> str | None:
    """Why `hashed` is not a usable bcrypt hash, or None when it is.

    Checked at start: a hash bcrypt cannot parse would otherwise fail every request."""
    if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
        return "is not a bcrypt hash"
    if not _BCRYPT_HASH.match(hashed):
        return "is a malformed bcrypt hash (expected $2b$NN$ and 53 characters of ./A-Za-z0-9)"
    try:
        bcrypt.checkpw(b"", hashed.encode())
    except ValueError:
        return "is a malformed bcrypt hash (bcrypt cannot read it)"
    return None


def tls_context(tls: TLSServerConfig, base: Path, source: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    try:
        context.load_cert_chain(base / tls.cert_file, base / tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(source, "tls_server_config", f"cannot load cert/key: {exc}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        if not tls.client_ca_file:
            raise ConfigError(
                source, "tls_server_config.client_ca_file", "is required to verify clients"
            )
        context.load_verify_locations(base / tls.client_ca_file)
    return context


class BasicAuth:
    """Checks `Authorization: Basic ...` against bcrypt hashes.

    bcrypt is slow on purpose (tens of ms): as exporter-toolkit does, results are cached
    (keyed by a digest, never the password itself) so a scrape every few seconds costs one
    hash per credential. Only matches are cached: a flood of distinct wrong passwords
    cannot evict the scraper's entry. A cached answer is a plain dict read with no lock, so hashing
    never delays it. At most `hash_slots` hashes run at once; a check that finds them all
    busy answers BUSY at once instead of queueing, so a flood of wrong passwords can take
    neither every core nor every connection thread. Unknown users are checked against a
    dummy hash so timing does not reveal names.

    Passwords over 72 bytes are a mismatch without hashing: bcrypt 5 refuses them, and no
    stored hash can match one (bcrypt 5 and Go's x/crypto refuse to hash them; older
    tools truncated to 72 bytes, which would make two different passwords equal).
    Pre-hashing instead would make every htpasswd-made hash unusable.
    """

    OK, DENIED, BUSY = "ok", "denied", "busy"

    def __init__(self, users: dict[str, str], hash_slots: int | None = None):
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))
        self._cache: dict[bytes, None] = {}
        self._insert = threading.Lock()
        # Half the cores (at least one) hash; the rest keep answering cached scrapes.
        slots = hash_slots or max(1, (os.cpu_count() or 2) // 2)
        self._hashing = threading.BoundedSemaphore(slots)

    def check(self, header: str | None) -> bool:
        return self.verdict(header) == self.OK

    def verdict(self, header: str | None) -> str:
        if not header or not header.startswith("Basic "):
            return self.DENIED
        try:
            decoded = base64.b64decode(header.removeprefix("Basic "), validate=True)
            user, sep, password = decoded.decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return self.DENIED
        secret = password.encode()
        if not sep or len(secret) > BCRYPT_MAX_PASSWORD_BYTES:
            return self.DENIED
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join([user.encode(), hashed or b"", secret])).digest()
        if key in self._cache:  # a dict read is atomic: no lock on the hot path
            return self.OK
        if not self._hashing.acquire(blocking=False):
            return self.BUSY
        try:
            ok = bcrypt.checkpw(secret, hashed or self._dummy) and hashed is not None
        except ValueError:
            ok = False  # hashes are checked at start; never let one request crash
        finally:
            self._hashing.release()
        if not ok:
            return self.DENIED
        with self._insert:
            if len(self._cache) >= AUTH_CACHE_SIZE:
                # Drop the oldest entry (dicts keep insertion order); readers never lock.
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[key] = None
        return self.OK
