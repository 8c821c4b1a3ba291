"""The versions of Prometheus, Alertmanager and Grafana on the master, and the oldest each
minicluster supports.

    Prometheus    2.42  (Debian 12, what the tests run) to 3.x (Homebrew)
    Alertmanager  0.25  (Debian 12) to 0.3x (Homebrew)
    Grafana       12.2  dashboards are schemaVersion 42, which Grafana knows from 12.2 on;
                        the dashboard API /apis/dashboard.grafana.app/v1beta1 is there
                        from 12.0, v1 from 13

`--version` output is parsed from what the binaries print: Prometheus and Alertmanager
through prometheus/common's version.Print (`<program>, version X.Y.Z (branch: ...`),
Grafana through its CLI (`grafana version X.Y.Z` from `grafana --version`) or its
server command (`Version X.Y.Z (commit: ..., branch: ...)` from `grafana server -v` and
the old `grafana-server -v`). Recorded outputs are in tests/deploy/fixtures/versions/.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from minicluster.core.config import Config

MINIMUMS: dict[str, tuple[int, int, int]] = {
    "prometheus": (2, 42, 0),
    "alertmanager": (0, 25, 0),
    "grafana": (12, 2, 0),
}

_PATTERNS = {
    "prometheus": re.compile(r"^prometheus, version (\d+)\.(\d+)\.(\d+)", re.MULTILINE),
    "alertmanager": re.compile(r"^alertmanager, version (\d+)\.(\d+)\.(\d+)", re.MULTILINE),
    "grafana": re.compile(
        r"^(?:grafana version |Version )v?(\d+)\.(\d+)\.(\d+)", re.MULTILINE | re.IGNORECASE
    ),
}

# Each section of the master's answer starts with this line and the service's name.
_MARKER = "==minicluster-version=="

# Grafana's dashboard API group; v1 is served from Grafana 13, v1beta1 from 12.0.
DASHBOARD_API_GROUP = "/apis/dashboard.grafana.app"
DASHBOARD_API_VERSIONS = ("v1", "v1beta1")


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def parse_version(service: str, output: str) -> tuple[int, int, int] | None:
    """The X.Y.Z that `service`'s version output names, or None if it names none."""
    match = _PATTERNS[service].search(output)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def version_command(service: str, binary: str) -> str:
    """The shell command that prints `binary`'s version (stderr too: older kingpin builds
    print it there)."""
    flag = "-v" if service == "grafana" and binary.endswith("grafana-server") else "--version"
    return f"{shlex.quote(binary)} {flag} 2>&1"


def master_command(binaries: dict[str, str]) -> str:
    """One command for the master: each service's version output behind a marker line;
    a binary that is not there prints nothing after its marker."""
    parts = [
        f"echo {_MARKER} {service}; test -x {shlex.quote(binary)} && "
        f"{version_command(service, binary)}; true"
        for service, binary in binaries.items()
    ]
    return "; ".join(parts)


def split_master_output(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(_MARKER):
            current = line[len(_MARKER) :].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {service: "\n".join(lines).strip() for service, lines in sections.items()}


@dataclass(frozen=True)
class Assessment:
    service: str
    version: tuple[int, int, int] | None
    ok: bool
    detail: str
    fix: str = ""
    # Older than the supported minimum but running: doctor warns and does not fail, since
    # most of the stack still works (the README names what needs the newer version).
    warning: bool = False


def assess(service: str, binary: str, output: str, optional: bool = False) -> Assessment:
    """Is the `service` at `binary` new enough? `output` is what its version command
    printed (empty when the binary is missing)."""
    minimum = MINIMUMS[service]
    upgrade = (
        f"brew upgrade {service}"
        if binary.startswith("/opt/homebrew/")
        else (f"install {service} {dotted(minimum)} or newer at {binary}")
    )
    if not output:
        if optional:
            return Assessment(service, None, True, f"not installed at {binary} (optional)")
        return Assessment(service, None, False, f"{binary} is missing", f"make deploy ({upgrade})")
    version = parse_version(service, output)
    if version is None:
        first = output.splitlines()[0][:80]
        return Assessment(service, None, False, f"{binary} printed no version: {first!r}", upgrade)
    if version < minimum:
        return Assessment(
            service,
            version,
            True,
            f"{dotted(version)} is older than {dotted(minimum)}, the oldest minicluster supports",
            upgrade,
            warning=True,
        )
    return Assessment(service, version, True, f"{dotted(version)} (>= {dotted(minimum)})")


def configured_binaries(config: Config) -> dict[str, str]:
    return {
        "prometheus": config.prometheus.binary,
        "alertmanager": config.alertmanager.binary,
        "grafana": config.grafana.binary,
    }


def master_versions(
    run: Callable[[str], tuple[bool, str, str]], binaries: dict[str, str]
) -> list[Assessment]:
    """Each service's version on the master; `run` runs a shell command there and returns
    (ok, stdout, stderr). Grafana is optional (Debian has none; deploy skips it)."""
    _, out, err = run(master_command(binaries))
    outputs = split_master_output(out)
    if set(outputs) != set(binaries):
        raise RuntimeError(f"no version answer from the master: {(err or out).strip()[:200]}")
    return [
        assess(service, binary, outputs[service], optional=service == "grafana")
        for service, binary in binaries.items()
    ]


def dashboard_api_path(discovery: dict, uid: str, namespace: str = "default") -> str:
    """The path of dashboard `uid` in the newest stable version of Grafana's dashboard API
    that `discovery` (the JSON of GET /apis/dashboard.grafana.app) lists."""
    served = {entry.get("version") for entry in discovery.get("versions", [])}
    for version in DASHBOARD_API_VERSIONS:
        if version in served:
            return f"{DASHBOARD_API_GROUP}/{version}/namespaces/{namespace}/dashboards/{uid}"
    raise ValueError(
        f"Grafana serves none of {', '.join(DASHBOARD_API_VERSIONS)} of dashboard.grafana.app "
        f"(it lists {sorted(v for v in served if v)}): minicluster needs Grafana "
        f"{dotted(MINIMUMS['grafana'])} or newer"
    )
