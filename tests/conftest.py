"""Test tiers, enforced.

- no marker: the fast tier (`make check`): unit, golden, promtool, drift and render tests.
  No root, no network namespaces, no daemons; passes on macOS and as any user on Linux.
- `integration` (`make integration`): real Prometheus, Alertmanager, sshd, Chromium and
  torchrun on loopback.
- `e2e` (`make e2e`): root, network namespaces and the two simulated Minis.

A test that starts a program of a tier above its own fails, and the program does not
start: an audit hook (PEP 578) sees every process this interpreter starts (subprocess,
os.exec*, os.posix_spawn, os.system) while a test sets up or runs. Teardown is not
checked: stopping what a fixture started is always allowed. The hook sees the programs
that the test process starts itself; a child `minicluster` command is judged by the
sub-command it runs.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import sys
from collections.abc import Iterable, Sequence

import pytest

# The live stack is one session fixture shared by tests/stack and tests/top: imported into
# each folder's conftest it would be two fixtures, and the second would start a second
# stack beside the first.
pytest_plugins = ["tests.stack.live_stack"]

FAST, INTEGRATION, E2E = 0, 1, 2
TIER_NAMES = {FAST: "the fast tier", INTEGRATION: "integration", E2E: "e2e"}
MARKERS = {
    "integration": "real Prometheus, Alertmanager, sshd, Chromium or torchrun on loopback "
    "(`make integration`)",
    "e2e": "root, network namespaces and the two simulated Minis (`make e2e`)",
}

# Programs by the tier they need. promtool and amtool are static checkers: the fast tier
# uses them (on macOS: brew install prometheus alertmanager).
TOOLS = {
    **dict.fromkeys(("ip", "tc", "nsenter", "unshare", "iptables", "nft", "bridge", "brctl"), E2E),
    **dict.fromkeys(
        (
            "prometheus",
            "alertmanager",
            "grafana",
            "grafana-server",
            "prometheus-node-exporter",
            "node_exporter",
            "sshd",
            "ssh",
            "scp",
            "torchrun",
            "chromium",
            "chromium-browser",
            "google-chrome",
        ),
        INTEGRATION,
    ),
}
# `python -m MODULE` by the tier it needs.
PYTHON_MODULES = {"torch.distributed.run": INTEGRATION}
# `minicluster COMMAND`: the commands that start jobs, services or ssh sessions.
# (`demo --stop` only signals the PIDs a demo recorded.)
CLI_COMMANDS = dict.fromkeys(
    ("demo", "run-job", "bench", "deploy", "undeploy", "doctor"), INTEGRATION
)
# Wrappers whose first non-option word is the program they run.
WRAPPERS = {"env", "sudo", "setsid", "nohup", "timeout", "stdbuf", "nice", "flock", "exec"}
# Their options that take a value in the next word.
WRAPPER_OPTION_VALUES = {
    "env": {"-u", "--unset", "-C", "--chdir"},
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-U"},
    "timeout": {"-s", "--signal", "-k", "--kill-after"},
    "flock": {"-w", "--timeout", "-E", "--conflict-exit-code"},
    "nice": {"-n", "--adjustment"},
}
SHELLS = {"sh", "bash", "dash", "zsh"}
PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")
# Makefile targets by the tier they need, once the venv exists (`-o .venv/.installed`).
MAKE_TARGETS = {
    **CLI_COMMANDS,
    "install": INTEGRATION,
    "integration": INTEGRATION,
    "e2e": E2E,
    "test": E2E,
}
MAKE_DRY = {"-n", "--dry-run", "--just-print", "--recon"}


# Where tests write their own programs (a fake `ssh` in tmp_path): those run in any tier.
STAND_IN_ROOTS: list[str] = []


def _stand_in(word: str) -> bool:
    if not os.path.isabs(word):
        return False
    path = os.path.realpath(word)
    return any(path.startswith(root + os.sep) for root in STAND_IN_ROOTS)


def _python_tier(words: Sequence[str]) -> int:
    if "-m" not in words[1:-1]:
        return FAST
    module = words[words.index("-m", 1) + 1]
    if module == "minicluster":
        return _cli_tier(words[words.index("-m", 1) + 1 :])
    return PYTHON_MODULES.get(module, FAST)


def _cli_tier(words: Sequence[str]) -> int:
    command = next((w for w in words[1:] if not w.startswith("-")), "")
    if command == "demo" and "--stop" in words:
        return FAST
    return CLI_COMMANDS.get(command, FAST)


def _shell_tier(script: str) -> int:
    try:
        words = shlex.split(script)
    except ValueError:
        words = script.split()
    tiers = [TOOLS.get(os.path.basename(w), FAST) for w in words if not _stand_in(w)]
    tiers += [PYTHON_MODULES.get(words[i + 1], FAST) for i, w in enumerate(words[:-1]) if w == "-m"]
    return max(tiers, default=FAST)


def _wrapped(wrapper: str, words: Sequence[str]) -> list[str]:
    """The command line a wrapper (`env A=1 prog`, `timeout -s KILL 10 prog`) runs."""
    rest = list(words)
    while rest and (rest[0].startswith("-") or "=" in rest[0]):
        option = rest.pop(0)
        if option in WRAPPER_OPTION_VALUES.get(wrapper, ()) and rest:
            rest.pop(0)
    if wrapper in ("timeout", "flock") and rest:
        rest.pop(0)  # the duration, the lock file
    return rest


def _make_tier(words: Sequence[str]) -> int:
    if MAKE_DRY & set(words[1:]):
        return FAST
    pairs = list(itertools.pairwise(words[1:]))
    if ("-o", ".venv/.installed") not in pairs:
        return INTEGRATION  # it may create the venv: pip downloads torch
    valued = {b for a, b in pairs if a in ("-o", "-C", "-f", "-W", "-I")}
    targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return max((MAKE_TARGETS.get(t, FAST) for t in targets if t not in valued), default=FAST)


def required_tier(argv: Iterable[object]) -> int:
    """The tier a command line needs (FAST, INTEGRATION or E2E)."""
    words = [os.fsdecode(w) if isinstance(w, bytes) else str(w) for w in argv]
    if not words:
        return FAST
    name = os.path.basename(words[0])
    if name in SHELLS:
        if "-c" in words[1:-1]:
            return _shell_tier(words[words.index("-c", 1) + 1])
        return FAST
    if name in WRAPPERS:
        return required_tier(_wrapped(name, words[1:]))
    if _stand_in(words[0]):
        return FAST
    if name in TOOLS:
        return TOOLS[name]
    if PYTHON.match(name) or words[0] == sys.executable:
        return _python_tier(words)
    if name == "minicluster":
        return _cli_tier(words)
    if name == "make":
        return _make_tier(words)
    return FAST


class TierViolation(RuntimeError):
    pass


class _Guard:
    """What the test now running may start; None outside setup and call."""

    def __init__(self) -> None:
        self.allowed: int | None = None
        self.nodeid = ""
        self.violations: dict[str, list[str]] = {}

    def check(self, argv: Iterable[object]) -> None:
        allowed = self.allowed
        if allowed is None:
            return
        argv = list(argv)
        needed = required_tier(argv)
        if needed <= allowed:
            return
        marker = "e2e" if needed == E2E else "integration"
        message = (
            f"{self.nodeid} starts {shlex.join(map(str, argv))[:200]!r}, which needs "
            f"@pytest.mark.{marker} ({MARKERS[marker]}); {TIER_NAMES[allowed]} may not"
        )
        self.violations.setdefault(self.nodeid, []).append(message)
        raise TierViolation(message)

    def audit(self, event: str, args: tuple) -> None:
        if self.allowed is None:
            return
        if event == "subprocess.Popen":
            self.check(args[1] if not isinstance(args[1], (str, bytes)) else [args[1]])
        elif event in ("os.exec", "os.posix_spawn"):
            self.check(args[1])
        elif event == "os.spawn":
            self.check(args[2])
        elif event == "os.system":
            self.check(["sh", "-c", os.fsdecode(args[0])])


GUARD = _Guard()
_installed = False


def tier_of(item: pytest.Item) -> int:
    if item.get_closest_marker("e2e"):
        return E2E
    if item.get_closest_marker("integration"):
        return INTEGRATION
    return FAST


def pytest_configure(config: pytest.Config) -> None:
    global _installed
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    if not _installed:  # audit hooks cannot be removed; one per interpreter
        sys.addaudithook(GUARD.audit)
        _installed = True


def pytest_sessionstart(session: pytest.Session) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)  # pytest's tmp_path plugin
    if factory is not None:
        STAND_IN_ROOTS.append(os.path.realpath(factory.getbasetemp()))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    GUARD.nodeid = item.nodeid
    GUARD.allowed = tier_of(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    GUARD.allowed = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    violations = GUARD.violations.pop(item.nodeid, None) if call.when != "teardown" else None
    if violations and not report.failed:
        # Also when the test swallowed the exception: the marker is what is wrong.
        report.outcome = "failed"
        report.longrepr = "\n".join(violations)
