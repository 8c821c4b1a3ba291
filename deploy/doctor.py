"""`minicluster doctor`: is every node ready to run a job? One check, one row, one fix.

Per node, over ssh (the same pyinfra connection deploy uses):

    ssh reachable            pyinfra connects with the configured user, key, known_hosts
    python and venv          node.python exists; <install_dir>/venv/bin/python exists
    imports under launchd    the exporter plist's interpreter imports the package with the
                             plist's EnvironmentVariables only (`env -i`), as launchd runs it
    exporter from master     the master gets /metrics from the node's exporter (with
                             security.tls: over https with Prometheus' client certificate)
    clock                    within alerts.clock_skew_max_seconds (50 ms) of the master's
    gloo address             the configured interface carries the node's address, and it is
                             neither loopback nor IPv6 link-local (GLOO_SOCKET_IFNAME)
    ports                    rendezvous (master) and trainer metrics ports free on the node
                             and reachable from the peers that use them
    checkpoint disk          free space where trainer.checkpoint_dir lives
    <service> version        on the master: Prometheus, Alertmanager and Grafana are at least
                             the oldest versions minicluster supports (deploy.versions)

Probes run with the node's base interpreter (deploy.probe), so they work even when the
venv is what is broken.
"""

from __future__ import annotations

import ipaddress
import json
import plistlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from minicluster.core import layout
from minicluster.core.config import Config, NodeSettings
from minicluster.deploy import endpoints, versions
from minicluster.deploy.inventory import build_state
from minicluster.deploy.plan import launchd_environment_command
from minicluster.deploy.probe import remote_command
from minicluster.deploy.run import connect
from minicluster.deploy.services import plist_path
from minicluster.render.launchd import exporter_label

# Room for a few checkpoints of the models this project trains (well under 100 MB each),
# plus their logs; a full disk fails a job at its first checkpoint.
MIN_FREE_BYTES = 1 << 30
CLOCK_SAMPLES = 5
# GNU date has %N; macOS's BSD date prints a literal "N", so fall back to perl, which
# every Mac has, with Time::HiRes. Both are looked up on PATH (a test fakes `date`).
CLOCK_COMMAND = (
    't=$(date +%s.%N); case "$t" in *N) '
    'perl -MTime::HiRes=time -e \'printf("%.6f\\n", time)\';; *) echo "$t";; esac'
)
IMPORTS = "import minicluster.exporter, minicluster.trainer, torch"


@dataclass(frozen=True)
class Check:
    node: str
    name: str
    ok: bool | None  # None: could not be checked because an earlier check failed
    detail: str
    fix: str = ""
    warning: bool = False  # passed, but the fix is worth doing (an old service version)


class Remote:
    """Commands on one node over its pyinfra connection."""

    def __init__(self, host, node: NodeSettings):
        self.host, self.node = host, node

    @property
    def connected(self) -> bool:
        return bool(self.host.connected)

    def run(self, command: str) -> tuple[bool, str, str]:
        ok, output = self.host.run_shell_command(command)
        return ok, output.stdout, output.stderr

    def probe(self, *args: str) -> dict:
        ok, out, err = self.run(remote_command(self.node.python, *args))
        if not ok or not out.strip():
            raise RuntimeError(err.strip() or "probe failed")
        return json.loads(out.strip().splitlines()[-1])


# --- parsing (pure functions, tested on recorded output) ------------------------------------


def parse_clock(text: str) -> float:
    return float(text.strip().splitlines()[-1])


def interface_addresses(text: str) -> list[str]:
    """Addresses in `ifconfig IFACE` (macOS) or `ip -o addr show dev IFACE` (Linux) output."""
    addresses = []
    words = text.replace("\n", " ").split()
    for index, word in enumerate(words[:-1]):
        if word in ("inet", "inet6"):
            value = words[index + 1].split("/")[0].split("%")[0]
            try:
                addresses.append(str(ipaddress.ip_address(value)))
            except ValueError:
                continue
    return addresses


def free_bytes(df_output: str) -> int:
    """Available bytes from POSIX `df -Pk` output (same columns on macOS and Linux)."""
    fields = df_output.strip().splitlines()[-1].split()
    return int(fields[3]) * 1024


def interface_command(kernel: str, interface: str) -> str:
    if kernel == "Darwin":
        return f"ifconfig {shlex.quote(interface)}"
    return f"ip -o addr show dev {shlex.quote(interface)}"


# --- the checks -------------------------------------------------------------------------------


def check_python(remote: Remote) -> list[Check]:
    node = remote.node
    ok, _, _ = remote.run(f"test -x {shlex.quote(node.python)}")
    python = Check(
        node.name,
        "python",
        ok,
        node.python if ok else f"{node.python} does not exist",
        "" if ok else f"brew install python@3.12 on {node.name}, or fix nodes.python",
    )
    ok_venv, _, _ = remote.run(f"test -x {shlex.quote(layout.venv_python(node))}")
    venv = Check(
        node.name,
        "venv",
        ok_venv,
        layout.venv_python(node) if ok_venv else f"{layout.venv_python(node)} does not exist",
        "" if ok_venv else "make deploy",
    )
    return [python, venv]


def check_launchd_imports(remote: Remote) -> Check:
    node, name = remote.node, "imports under launchd"
    ok, out, _ = remote.run(f"cat {shlex.quote(plist_path(exporter_label()))}")
    if not ok:
        return Check(node.name, name, False, "the exporter LaunchDaemon is not installed",
                     "make deploy")  # fmt: skip
    plist = plistlib.loads(out.encode())
    ok, _, err = remote.run(launchd_environment_command(plist, IMPORTS))
    if ok:
        return Check(node.name, name, True, f"{IMPORTS} with the plist's environment only")
    last = (err.strip().splitlines() or ["failed"])[-1]
    return Check(node.name, name, False, last, "make deploy (reinstalls the wheel into the venv)")


def check_exporter(master: Remote, node: NodeSettings, config: Config) -> Check:
    name = "exporter from master"
    url = endpoints.exporter_url(config, node)
    if not master.connected:
        return Check(node.name, name, None, f"cannot check: {config.master.name} is unreachable")
    # With TLS, as Prometheus scrapes it: the master's client certificate.
    result = master.probe("http", url, "--wait", "2", *endpoints.exporter_credentials(config))
    if result.get("status") == 200:
        return Check(node.name, name, True, f"{url} answers {config.master.name}")
    return Check(
        node.name,
        name,
        False,
        f"{url}: {result.get('error') or result.get('status')}",
        f"on {node.name}: sudo launchctl kickstart -k system/{exporter_label()}; "
        f"see {layout.log_dir(node)}/exporter.err.log",
    )


def clock_offset(remote: Remote) -> tuple[float, float]:
    """(offset of the node's clock from this machine's, uncertainty): min-RTT sample."""
    best: tuple[float, float] | None = None
    for _ in range(CLOCK_SAMPLES):
        before = time.time()
        ok, out, err = remote.run(CLOCK_COMMAND)
        after = time.time()
        if not ok:
            raise RuntimeError(err.strip() or "cannot read the clock")
        offset, half_rtt = parse_clock(out) - (before + after) / 2, (after - before) / 2
        if best is None or half_rtt < best[1]:
            best = (offset, half_rtt)
    assert best is not None
    return best


def check_clock(remote: Remote, master_offset: tuple[float, float] | None, limit: float) -> Check:
    node, name = remote.node, "clock"
    if master_offset is None:
        return Check(node.name, name, None, "cannot check: the master's clock is unreadable")
    offset, error = clock_offset(remote)
    skew = offset - master_offset[0]
    uncertainty = error + master_offset[1]
    detail = f"{skew * 1000:+.1f} ms from the master (±{uncertainty * 1000:.1f} ms)"
    # Fail only when the skew is beyond the limit even at the edge of the measurement error.
    if abs(skew) - uncertainty > limit:
        return Check(node.name, name, False, detail,
                     f"on {node.name}: sudo sntp -sS time.apple.com; turn on "
                     "'Set time and date automatically' (System Settings > General)")  # fmt: skip
    return Check(node.name, name, True, detail)


def check_gloo_address(remote: Remote, kernel: str) -> Check:
    node, name = remote.node, "gloo address"
    ok, out, err = remote.run(interface_command(kernel, node.interface))
    fix = (
        f"set nodes[{node.name}].interface to the interface that has {node.address} "
        "(`ifconfig` on the Mini), or the node's address to that interface's"
    )
    if not ok:
        return Check(node.name, name, False, f"no interface {node.interface}: {err.strip()}", fix)
    addresses = interface_addresses(out)
    address = node.ip
    if address is None or node.address not in addresses:
        return Check(node.name, name, False,
                     f"{node.interface} has {', '.join(addresses) or 'no address'}, "
                     f"not {node.address}", fix)  # fmt: skip
    if address.is_loopback or address.is_link_local:
        return Check(node.name, name, False, f"{node.address} is loopback or link-local",
                     "use the Mini's LAN or Thunderbolt Bridge address")  # fmt: skip
    return Check(node.name, name, True, f"GLOO_SOCKET_IFNAME={node.interface} -> {node.address}")


def check_ports(remote: Remote, peers: list[Remote], config: Config) -> Check:
    """Ports this node listens on during a job: free here, reachable from who connects."""
    node = remote.node
    ports = {f"metrics {port}": port for port in config.rank_ports(node)}
    if node.role == "master":
        ports["rendezvous " + str(config.trainer.rendezvous_port)] = config.trainer.rendezvous_port
    problems = []
    for label, port in ports.items():
        if remote.probe("bind", node.address, str(port))["result"] != "free":
            problems.append(f"{label} in use on {node.name}")
        for peer in peers:
            if not peer.connected:
                continue
            # "refused" proves the path is open (nothing listens yet); a timeout is a firewall.
            result = peer.probe("connect", node.address, str(port), "--timeout", "2")["result"]
            if result not in ("refused", "open"):
                problems.append(f"{label} from {peer.node.name}: {result}")
    if problems:
        return Check(node.name, "ports", False, "; ".join(problems),
                     "stop what listens there (lsof -nP -iTCP:PORT -sTCP:LISTEN) or allow the "
                     "port in the firewall (pf) for the cluster's addresses")  # fmt: skip
    return Check(node.name, "ports", True, ", ".join(ports) + " free and reachable")


def check_disk(remote: Remote, config: Config) -> Check:
    node = remote.node
    target = layout.checkpoint_dir(node, config.trainer)
    # The folder may not exist yet: measure the nearest existing parent.
    script = (
        f'd={shlex.quote(target)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d"'
    )
    ok, out, err = remote.run(script)
    if not ok:
        return Check(node.name, "checkpoint disk", False, err.strip(), "check the path")
    available = free_bytes(out)
    detail = f"{available / 2**30:.1f} GiB free for {target}"
    if available < MIN_FREE_BYTES:
        return Check(node.name, "checkpoint disk", False, detail,
                     f"free space on {node.name} or set trainer.checkpoint_dir to a bigger "
                     "volume")  # fmt: skip
    return Check(node.name, "checkpoint disk", True, detail)


def check_stack_versions(master: Remote, config: Config) -> list[Check]:
    found = versions.master_versions(master.run, versions.configured_binaries(config))
    return [
        Check(master.node.name, f"{a.service} version", a.ok, a.detail, a.fix, a.warning)
        for a in found
    ]


def _guarded(node: str, name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    """A check that raises is a failed check, never a crashed doctor."""
    try:
        result = check()
    except Exception as exc:  # a probe that failed on the node
        return [Check(node, name, False, f"could not check: {exc}")]
    return result if isinstance(result, list) else [result]


def diagnose(config: Config) -> list[Check]:
    state = build_state(config)
    errors = connect(state)
    remotes = {host.name: Remote(host, host.data.node) for host in state.inventory}
    master = remotes[config.master.name]
    master_clock = None
    if master.connected:
        try:
            master_clock = clock_offset(master)
        except RuntimeError:
            master_clock = None
    checks: list[Check] = []
    for node in config.nodes:
        remote = remotes[node.name]
        if not remote.connected:
            checks.append(Check(node.name, "ssh reachable", False, errors.get(node.name, "failed"),
                                f"start sshd (Remote Login) on {node.name} and check ssh_user, "
                                "ssh_key and ssh_known_hosts_file in config.yaml"))  # fmt: skip
            checks.append(check_exporter(master, node, config))
            continue
        checks.append(Check(node.name, "ssh reachable", True, f"{node.ssh_user}@{node.address}"))
        basics = check_python(remote)
        checks += basics
        if not basics[0].ok:
            checks.append(check_exporter(master, node, config))
            continue
        _, kernel, _ = remote.run("uname -s")
        peers = [r for name, r in remotes.items() if name != node.name]
        limit = config.alerts.clock_skew_max_seconds
        for name, check in [
            ("imports under launchd", partial(check_launchd_imports, remote)),
            ("exporter from master", partial(check_exporter, master, node, config)),
            ("clock", partial(check_clock, remote, master_clock, limit)),
            ("gloo address", partial(check_gloo_address, remote, kernel.strip())),
            ("ports", partial(check_ports, remote, peers, config)),
            ("checkpoint disk", partial(check_disk, remote, config)),
        ]:
            checks += _guarded(node.name, name, check)
        if node.name == config.master.name:
            versions_check = partial(check_stack_versions, remote, config)
            checks += _guarded(node.name, "versions", versions_check)
    for remote in remotes.values():
        if remote.connected:
            remote.host.disconnect()
    return checks


def failed(checks: list[Check]) -> list[Check]:
    return [check for check in checks if check.ok is not True]
