"""Collectors by name: which exist, and building the ones enabled on this platform."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import minicluster.exporter.collectors  # noqa: F401  (importing the package registers every collector)
from minicluster.exporter.collectors.base import Collector, registered


def collector_names() -> set[str]:
    """Every collector name, whatever the platform (config.yaml is checked on Linux too)."""
    return set(registered())


def current_platform() -> str:
    return "darwin" if sys.platform == "darwin" else "linux"


def build_collectors(
    options: Any,
    platform: str | None = None,
    sources: Mapping[str, Callable[[], Any]] | None = None,
) -> list[Collector]:
    """The enabled collectors that have something to read on `platform`, sorted by name.

    `sources` replaces the readers of named collectors (tests and the golden file).
    """
    platform = platform or current_platform()
    sources = sources or {}
    unknown = set(options.disabled_collectors) - collector_names()
    if unknown:
        raise ValueError(f"unknown collector(s): {', '.join(sorted(unknown))}")
    return [
        cls.from_options(options, source=sources.get(name))
        for name, cls in sorted(registered().items())
        if name not in options.disabled_collectors and platform in cls.platforms
    ]
