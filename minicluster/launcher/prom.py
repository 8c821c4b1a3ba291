"""The few Prometheus HTTP API calls `minicluster status` needs (instant queries)."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from minicluster.core.config import Config


class PrometheusError(Exception):
    """Prometheus could not be reached or refused a query; the message says which."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def prometheus_url(config: Config) -> str:
    master = config.master
    host = f"[{master.address}]" if ":" in master.address else master.address
    return f"http://{host}:{config.prometheus.port}"


class Prometheus:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[Sample]:
        """An instant query; returns the samples of the resulting vector."""
        url = f"{self.base_url}/api/v1/query"
        try:
            response = requests.get(url, params={"query": expr}, timeout=self.timeout)
            body = response.json()
        except requests.RequestException as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.base_url}: {exc}") from None
        except ValueError:
            raise PrometheusError(
                f"{url} answered HTTP {response.status_code} without JSON"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error', body)}")
        data = body["data"]
        if data["resultType"] != "vector":
            raise PrometheusError(f"query {expr!r} returned a {data['resultType']}, not a vector")
        return [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]
