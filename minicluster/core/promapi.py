"""Reading the metrics back: the few Prometheus HTTP API calls every consumer needs.

`vector` gives an instant query's `result` list as the API sends it; `query` and
`query_range` give `Series`. No answer at all is `PrometheusUnreachable` (with the cause
in a few words); an answer refusing the query is `QueryFailed`. Both are `PrometheusError`.

`prometheus_client_for(config)` is how every command reaches the cluster's Prometheus: with
security.tls it speaks HTTPS, checks the master's certificate against the cluster CA and
logs in as the web user (minicluster.core.controlpki); the local demo's is plain HTTP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests

from minicluster.core.config import Config
from minicluster.core.controlpki import WEB_USER, pki_paths


class PrometheusError(Exception):
    """Prometheus could not be reached or refused a query; the message says which."""


class PrometheusUnreachable(PrometheusError):
    """No answer from Prometheus at all (refused, timed out, not its HTTP API)."""


class QueryFailed(PrometheusError):
    """Prometheus answered but refused a query; the message names it."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    times: list[float]  # unix seconds
    values: list[float]  # NaN and +-Inf kept as floats

    @property
    def value(self) -> float:
        """The latest value (an instant query's only one)."""
        return self.values[-1]

    @property
    def last(self) -> float | None:
        """The latest finite value, if any."""
        finite = [v for v in self.values if math.isfinite(v)]
        return finite[-1] if finite else None


def prometheus_url(config: Config) -> str:
    """Where the master's Prometheus listens (https when security.tls)."""
    master = config.master
    host = f"[{master.address}]" if ":" in master.address else master.address
    scheme = "https" if config.security.tls else "http"
    return f"{scheme}://{host}:{config.prometheus.port}"


def connection_failure(text: str) -> str:
    """The cause of a failed connection in a few words (requests nests it deep)."""
    for marker, reason in (
        ("refused", "connection refused"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network unreachable"),
        ("resolve", "host name not found"),
        ("not known", "host name not found"),
        ("timed out", "connect timed out"),
        ("CERTIFICATE_VERIFY_FAILED", "its certificate is not signed by the cluster CA"),
        ("WRONG_VERSION_NUMBER", "it does not speak TLS"),
        ("SSL", "TLS handshake failed"),
    ):
        if marker in text:
            return reason
    return "cannot connect"


class Prometheus:
    """`auth` is (user, password) for basic auth; `verify` is requests' own: True (the
    system's CAs), False, or the path of the CA file that signed the server's certificate."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = auth
        # Given with each request: requests lets REQUESTS_CA_BUNDLE override a session's.
        self.verify = verify

    def _data(self, path: str, form: dict[str, str]) -> dict:
        try:
            # POST: long expressions do not hit URL length limits.
            response = self.session.post(
                f"{self.base_url}{path}", data=form, timeout=self.timeout, verify=self.verify
            )
        except requests.RequestException as exc:
            reason = type(exc).__name__
            if isinstance(exc, requests.ConnectionError):
                reason = connection_failure(str(exc))
            elif isinstance(exc, requests.Timeout):
                reason = f"no answer within {self.timeout:g} s"
            raise PrometheusUnreachable(
                f"Prometheus at {self.base_url} is unreachable ({reason})"
            ) from None
        if response.status_code == 401:
            login = "the web password was refused" if self.session.auth else "it asks to log in"
            raise PrometheusUnreachable(
                f"Prometheus at {self.base_url} is unreachable (HTTP 401: {login}; "
                "`make deploy` installs the password this machine has)"
            )
        try:
            body = response.json()
        except ValueError:
            status = response.status_code
            raise PrometheusUnreachable(
                f"Prometheus at {self.base_url} is unreachable (HTTP {status}, not its API)"
            ) from None
        if body.get("status") != "success":
            raise QueryFailed(f"query {form['query']!r} failed: {body.get('error', body)}")
        return body["data"]

    def vector(self, expr: str, at: float | None = None) -> list[dict]:
        """The `result` list of an instant vector query, evaluated at `at` (Unix seconds;
        Prometheus's own now when None)."""
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at:.3f}"
        data = self._data("/api/v1/query", form)
        if data.get("resultType") != "vector":
            raise QueryFailed(f"query {expr!r} returned a {data.get('resultType')}, not a vector")
        return data["result"]

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query; each result is a Series of one point."""
        return [
            Series(item["metric"], [float(item["value"][0])], [float(item["value"][1])])
            for item in self.vector(expr, at)
        ]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        form = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return [
            Series(
                labels=item["metric"],
                times=[float(t) for t, _ in item["values"]],
                values=[float(v) for _, v in item["values"]],
            )
            for item in self._data("/api/v1/query_range", form)["result"]
        ]

    def ready(self) -> bool:
        try:
            ready = self.session.get(
                f"{self.base_url}/-/ready", timeout=self.timeout, verify=self.verify
            )
            return ready.ok
        except requests.RequestException:
            return False

    def close(self) -> None:
        self.session.close()


def prometheus_client_for(
    config: Config | None, url_override: str | None = None, timeout: float = 5.0
) -> Prometheus:
    """The client of `config`'s Prometheus (or of `url_override`, e.g. `--prometheus`).

    With security.tls: the cluster CA checks the server and the web user logs in, over
    https only (a password never travels in clear to an http:// override). Raises
    MissingCredentials (a ConfigError, one line) when the CA or password file is missing.
    Without a config (an explicit URL only) the client is plain."""
    if config is None:
        if url_override is None:
            raise ValueError("a config or a URL is needed")
        return Prometheus(url_override, timeout=timeout)
    url = url_override or prometheus_url(config)
    if not config.security.tls or not url.lower().startswith("https://"):
        return Prometheus(url, timeout=timeout)
    pki = pki_paths(config)
    pki.require(pki.ca_cert)
    return Prometheus(
        url, timeout=timeout, auth=(WEB_USER, pki.password()), verify=str(pki.ca_cert)
    )
