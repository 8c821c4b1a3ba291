"""The two Prometheus HTTP API calls a report needs: `query` and `query_range`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests


class PrometheusError(Exception):
    """Prometheus could not be reached or refused a query; the message says which."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    times: list[float]  # unix seconds
    values: list[float]  # NaN and +-Inf kept as floats

    @property
    def last(self) -> float | None:
        finite = [v for v in self.values if math.isfinite(v)]
        return finite[-1] if finite else None


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict) -> dict:
        try:
            response = requests.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"{self.url}{path}: HTTP {response.status_code}, not a Prometheus API answer"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(
                f"{self.url}: query {params.get('query')!r} failed: "
                f"{body.get('errorType', '')} {body.get('error', response.status_code)}"
            )
        return body["data"]

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get(
            "/api/v1/query_range",
            {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        return [
            Series(
                labels=item["metric"],
                times=[float(t) for t, _ in item["values"]],
                values=[float(v) for _, v in item["values"]],
            )
            for item in data["result"]
        ]

    def query(self, query: str, at: float) -> list[Series]:
        """An instant query; each result is a Series of one point."""
        data = self._get("/api/v1/query", {"query": query, "time": f"{at:.3f}"})
        if data["resultType"] != "vector":
            raise PrometheusError(f"query {query!r} gave a {data['resultType']}, not a vector")
        return [
            Series(item["metric"], [float(item["value"][0])], [float(item["value"][1])])
            for item in data["result"]
        ]

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except requests.RequestException:
            return False
