"""Instant queries over Prometheus's HTTP API, all of a frame at one evaluation time."""

from __future__ import annotations

import requests


def _connection_failure(text: str) -> str:
    """The cause of a failed connection in a few words (requests nests it deep)."""
    for marker, reason in (
        ("refused", "connection refused"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network unreachable"),
        ("resolve", "host name not found"),
        ("not known", "host name not found"),
        ("timed out", "connect timed out"),
    ):
        if marker in text:
            return reason
    return "cannot connect"


class PrometheusUnreachable(Exception):
    """No answer from Prometheus at all (refused, timed out, not HTTP)."""


class QueryFailed(Exception):
    """Prometheus answered but refused a query; the message names it."""


class PromClient:
    def __init__(self, base_url: str, timeout: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def query(self, expr: str, at: float) -> list[dict]:
        """The `result` list of an instant vector query evaluated at `at` (Unix seconds)."""
        url = f"{self.base_url}/api/v1/query"
        try:
            response = self.session.post(
                url, data={"query": expr, "time": f"{at:.3f}"}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            reason = type(exc).__name__
            if isinstance(exc, requests.ConnectionError):
                reason = _connection_failure(str(exc))
            elif isinstance(exc, requests.Timeout):
                reason = f"no answer within {self.timeout:g} s"
            raise PrometheusUnreachable(
                f"Prometheus at {self.base_url} is unreachable ({reason})"
            ) from None
        try:
            body = response.json()
        except ValueError:
            status = response.status_code
            raise PrometheusUnreachable(
                f"Prometheus at {self.base_url} is unreachable (HTTP {status}, not its API)"
            ) from None
        if body.get("status") != "success":
            raise QueryFailed(f"query {expr!r} failed: {body.get('error', body)}")
        data = body["data"]
        if data.get("resultType") != "vector":
            raise QueryFailed(f"query {expr!r} returned a {data.get('resultType')}")
        return data["result"]

    def close(self) -> None:
        self.session.close()
