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
import ssl
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from minicluster.core.config import ConfigError, key_path

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
AUTH_CACHE_SIZE = 128


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
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        config = WebConfig.model_validate(data)
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
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
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ConfigError(source, f"basic_auth_users.{user}", "is not a bcrypt hash")
        auth = BasicAuth(config.basic_auth_users)
    return context, auth


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
    hash per credential, and checks run one at a time so a flood cannot take every core.
    Unknown users are checked against a dummy hash so timing does not reveal names.
    """

    def __init__(self, users: dict[str, str]):
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=10))
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header.removeprefix("Basic "), validate=True).decode()
            user, sep, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join([user.encode(), hashed or b"", password.encode()])).digest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
            self._cache[key] = ok
            if len(self._cache) > AUTH_CACHE_SIZE:
                self._cache.popitem(last=False)
        return ok
