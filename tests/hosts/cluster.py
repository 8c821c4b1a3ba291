"""Simulated Mac Minis: network namespaces with sshd, own folders and a launchctl stand-in.

Any number of hosts, named by the caller (the pair by default: mini-red, mini-yellow); the
first is the master. Each host is an *anchor* process (`sleep infinity`) that owns a network
namespace, a mount namespace and a UTS namespace (the host's name). In its mount namespace
per-host folders are bind-mounted over the paths a Mini uses, so deploy writes the same
paths it writes on a Mac and each host still has its own copy:

    /Library/LaunchDaemons   the host's LaunchDaemon plists
    /opt                     holds install_dir /opt/minicluster (venv, config, stack, data)
                             and Homebrew's prefix /opt/homebrew (a `brew` stand-in)
    /usr/local/sbin          first on the host's PATH: `launchctl` (and a fake `date`)
    ~/.bashrc                empty: the control machine's shell set-up is not the host's
    /etc/group               gid 0 is called `wheel`, as on macOS (plists are root:wheel)

sshd and every command run on a host enter the anchor's namespaces, so a restarted sshd
sees the same host. With `pin_cpus` each host's sshd (so everything deploy and the
launcher start through it: exporter, torchrun, ranks) is pinned to one of the machine's
cores, round robin, and sessions get OMP_NUM_THREADS=1: four hosts on two cores then share
them evenly instead of every rank spinning threads on every core. A mount point must
exist: an empty /Library/LaunchDaemons is created if missing and left in place (other
runs may be using it as a mount point right now).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from minicluster.core.config import Config, load_config
from tests.hosts import sshd
from tests.hosts.network import HOST_INTERFACE, Lan, create_lan
from tests.hosts.wheelhouse import wheelhouse

# The pair's names (the `two_minis` fixture); other clusters name their own hosts.
HOST_NAMES = ("mini-red", "mini-yellow")
# Host path -> per-host folder mounted over it.
MOUNTS = ("/Library/LaunchDaemons", "/opt", "/usr/local/sbin")
# The control machine's ~/.bashrc (pyenv init and the like) would run before every command
# ssh runs on a host, ~0.5 s each; a simulated Mini gets an empty one.
SHELL_RC = str(Path.home() / ".bashrc")
STANDIN_DIR = "/usr/local/sbin"
HOST_PATH = f"{STANDIN_DIR}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_DIR = "/opt/minicluster"
LAUNCHCTL_STANDIN = Path(__file__).with_name("launchctl_standin.py")
# Homebrew's prefix on Apple Silicon; not on the PATH ssh sessions get, as on a Mac.
HOMEBREW_PREFIX = "/opt/homebrew"
BREW_STANDIN = Path(__file__).with_name("brew_standin.py")


def base_python() -> str:
    """An interpreter (not a venv) that exists on the hosts: the one this venv was made from."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _wait_for_ssh_banner(address: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, 22), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd on {address} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


@dataclass
class SimulatedHost:
    name: str
    address: str
    netns: str
    root: Path  # this host's folder on the control machine
    cluster_root: Path
    environment: dict[str, str]  # what every ssh session (and `run`) gets
    cpu: int | None = None  # the core sshd (and all it starts) is pinned to, if any
    anchor: subprocess.Popen | None = None
    sshd: subprocess.Popen | None = None

    # --- files --------------------------------------------------------------------------

    def path(self, host_path: str) -> Path:
        """Where `host_path` on this host is on the control machine's file system."""
        for mount in MOUNTS:
            if host_path == mount or host_path.startswith(mount + "/"):
                return self.root / "fs" / host_path.lstrip("/")
        return Path(host_path)

    @property
    def launchd_state(self) -> Path:
        return self.root / "launchd-state"

    # --- processes ----------------------------------------------------------------------

    def start(self) -> None:
        """Create the namespaces (anchor) and mount the per-host folders."""
        for mount in MOUNTS:
            self.path(mount).mkdir(parents=True, exist_ok=True)
            Path(mount).mkdir(parents=True, exist_ok=True)  # the mount point
        pairs = [(str(self.path(m)), m) for m in MOUNTS]
        if Path(SHELL_RC).is_file():
            rc = self.root / "fs" / "shell-rc"
            rc.write_text("# simulated Mini: no shell start-up files\n")
            pairs.append((str(rc), SHELL_RC))
        group = self.root / "fs" / "group"
        group.write_text(macos_groups(Path("/etc/group").read_text()))
        pairs.append((str(group), "/etc/group"))
        binds = " && ".join(f"mount --bind {shlex.quote(a)} {shlex.quote(b)}" for a, b in pairs)
        script = f"{binds} && hostname {self.name} && echo ready && exec sleep infinity"
        self.anchor = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts",
             "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.anchor.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{self.name}: namespace setup failed: {self.anchor.stderr.read()}")
        self._write_launchctl()
        self._write_brew()
        self.start_sshd()

    def _enter(self) -> list[str]:
        assert self.anchor is not None, "host not started"
        pin = ["taskset", "--cpu-list", str(self.cpu)] if self.cpu is not None else []
        enter = ["nsenter", "--target", str(self.anchor.pid), "--net", "--mount", "--uts", "--"]
        return [*enter, *pin]

    def run(
        self, args: list[str] | str, *, check: bool = True, timeout: float = 60, **kwargs
    ) -> subprocess.CompletedProcess:
        """Run a command on this host (its namespaces, its PATH), without ssh."""
        argv = ["sh", "-c", args] if isinstance(args, str) else list(args)
        return subprocess.run(
            [*self._enter(), *argv],
            env=self.environment,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            **kwargs,
        )

    def ssh(self, command: str, *, check: bool = True, timeout: float = 60):
        """Run `command` on this host through real ssh with the harness's key."""
        return subprocess.run(
            ["ssh", "-F", str(self.cluster_root / "ssh" / "ssh_config"), self.name, command],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def start_sshd(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        log = (self.root / "sshd" / "sshd.log").open("ab")
        self.sshd = subprocess.Popen(
            [*self._enter(), sshd.SSHD, "-D", "-e", "-f", str(self.root / "sshd" / "sshd_config")],
            stdout=log,
            stderr=log,
        )
        _wait_for_ssh_banner(self.address)

    def stop_sshd(self) -> None:
        """Stop the listener (new connections are refused); running sessions are left alone."""
        if self.sshd and self.sshd.poll() is None:
            self.sshd.terminate()
            self.sshd.wait(timeout=10)
        self.sshd = None

    @contextlib.contextmanager
    def sshd_stopped(self) -> Iterator[None]:
        self.stop_sshd()
        try:
            yield
        finally:
            self.start_sshd()

    @contextlib.contextmanager
    def clock_offset(self, seconds: float) -> Iterator[None]:
        """Make this host's `date` report a clock `seconds` off (a stand-in first on PATH)."""
        fake = self.path(f"{STANDIN_DIR}/date")
        fake.write_text(
            f"#!{base_python()}\n"
            "# Test-only: the real date(1), told the time is off by a fixed offset.\n"
            "import os, sys, time\n"
            f'os.execv("/bin/date", ["date", "-d", f"@{{time.time() + {seconds!r}:.9f}}",'
            " *sys.argv[1:]])\n"
        )
        fake.chmod(0o755)
        try:
            yield
        finally:
            fake.unlink(missing_ok=True)

    def _write_launchctl(self) -> None:
        standin = self.path(f"{STANDIN_DIR}/launchctl")
        standin.write_text(
            "#!/bin/sh\n# Test-only launchctl stand-in; see tests/hosts/launchctl_standin.py.\n"
            f'exec {base_python()} {LAUNCHCTL_STANDIN} --state {self.launchd_state} "$@"\n'
        )
        standin.chmod(0o755)

    def _write_brew(self) -> None:
        brew = self.path(f"{HOMEBREW_PREFIX}/bin/brew")
        brew.parent.mkdir(parents=True, exist_ok=True)
        brew.write_text(
            "#!/bin/sh\n# Test-only brew stand-in; see tests/hosts/brew_standin.py.\n"
            f'exec {base_python()} {BREW_STANDIN} {HOMEBREW_PREFIX} "$@"\n'
        )
        brew.chmod(0o755)

    def brew(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the host's `brew` (by its absolute path: it is not on the PATH)."""
        return self.run([f"{HOMEBREW_PREFIX}/bin/brew", *args], check=check)

    def launchd_job(self, label: str) -> dict | None:
        """The stand-in's record of a loaded job (plist, pid, runs), or None if not loaded."""
        try:
            return json.loads((self.launchd_state / f"{label}.json").read_text())
        except FileNotFoundError:
            return None

    def service_pid(self, label: str) -> int | None:
        """The pid of a running launchd job, as `launchctl print` reports it."""
        out = self.run(["launchctl", "print", f"system/{label}"], check=False).stdout
        for line in out.splitlines():
            key, _, value = line.strip().partition(" = ")
            if key == "pid":
                return int(value)
        return None

    def alive(self, pid: int) -> bool:
        """Whether `pid` is running (an exited process not yet reaped counts as gone)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def pids(self, lan: Lan) -> list[int]:
        return lan.pids(self.name)


@dataclass
class SimulatedCluster:
    """What the `two_minis` fixture yields; see tests/hosts/__init__.py for the API."""

    root: Path
    lan: Lan
    hosts: dict[str, SimulatedHost]
    ssh_key: Path
    known_hosts: Path
    ssh_config: Path
    config_path: Path
    base_config: dict = field(default_factory=dict)

    @property
    def master(self) -> SimulatedHost:
        return next(iter(self.hosts.values()))

    @property
    def workers(self) -> list[SimulatedHost]:
        return list(self.hosts.values())[1:]

    @property
    def red(self) -> SimulatedHost:
        return self.hosts["mini-red"]

    @property
    def yellow(self) -> SimulatedHost:
        return self.hosts["mini-yellow"]

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def write_config(
        self, path: Path | None = None, nodes: list[str] | None = None, **sections: dict
    ) -> Path:
        """Write the harness config with `sections` merged in (e.g. prometheus={...}).

        Without `path` it rewrites `config_path` (what deploy and doctor read). `nodes`
        keeps only those hosts under `nodes:` (the master must be one of them).
        """
        data = copy.deepcopy(self.base_config)
        if nodes is not None:
            data["nodes"] = [node for node in data["nodes"] if node["name"] in nodes]
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        target = path or self.config_path
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        return target

    def close(self) -> None:
        """Kill every process in the hosts' namespaces (all started here), then delete them."""
        for host in self.hosts.values():
            for pid in host.pids(self.lan):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for process in (host.sshd, host.anchor):
                if process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=10)
        self.lan.delete()


def macos_groups(etc_group: str) -> str:
    """/etc/group with gid 0 named `wheel`, as macOS names it."""
    lines = []
    for line in etc_group.splitlines():
        fields = line.split(":")
        if len(fields) == 4 and fields[2] == "0":
            fields[0] = "wheel"
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def harness_config(cluster_root: Path, addresses: dict[str, str], key: Path, known: Path):
    """config.yaml for the simulated hosts (the first is the master): a Mini's paths,
    Prometheus from "Homebrew"."""
    grafana = cluster_root / "grafana"
    nodes = []
    for index, name in enumerate(addresses):
        role = "master" if index == 0 else "worker"
        nodes.append(
            {
                "name": name,
                "address": addresses[name],
                "role": role,
                "ssh_user": "root",
                "ssh_port": 22,
                "ssh_key": str(key),
                "ssh_known_hosts_file": str(known),
                "install_dir": INSTALL_DIR,
                "interface": HOST_INTERFACE,
                "exporter_port": 9100,
                "python": base_python(),
            }
        )
    return {
        "cluster": {"name": "simulated"},
        "nodes": nodes,
        # prometheus.binary and alertmanager.binary are the defaults, Homebrew's: deploy
        # installs them with `brew`, whose stand-in links the host's Debian packages.
        "prometheus": {
            "scrape_interval_seconds": 2,
            "scrape_timeout_seconds": 1,
            "evaluation_interval_seconds": 2,
            "sd_refresh_seconds": 2,
        },
        "alertmanager": {},
        # Grafana is not installed on the simulated hosts: its files are rendered and
        # checked, its start is skipped because this binary does not exist.
        "grafana": {
            "binary": str(grafana / "bin" / "grafana"),
            "homepath": str(grafana / "share"),
            "admin_password_file": str(cluster_root / "secrets" / "grafana-admin-password"),
            "secret_key_file": str(cluster_root / "secrets" / "grafana-secret-key"),
        },
        "trainer": {"steps": 40, "checkpoint_interval": 20, "linger_seconds": 5},
        # TLS on, as by default; the cluster CA and keys under the harness's tmp folder,
        # never the real ~/.config.
        "security": {"tls": True, "pki_dir": str(cluster_root / "pki")},
    }


def start_cluster(
    root: Path, names: Sequence[str] = HOST_NAMES, pin_cpus: bool = False
) -> SimulatedCluster:
    """Build hosts called `names` (the first is the master) under `root`; call `.close()` on
    the result when done. `pin_cpus` spreads the hosts over the machine's cores."""
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"need two or more distinct host names, got {list(names)}")
    cores = sorted(os.sched_getaffinity(0))
    token = f"{os.getpid() % 100000}{os.urandom(2).hex()}"
    pip_wheels = wheelhouse()  # before any namespace exists: may download on a cold cache
    lan = create_lan(token)
    hosts: dict[str, SimulatedHost] = {}
    cluster = None
    try:
        ssh_dir = root / "ssh"
        ssh_dir.mkdir(parents=True)
        key = sshd.keygen(ssh_dir / "id_ed25519", "minicluster-tests")
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text((ssh_dir / "id_ed25519.pub").read_text())
        environment = {
            "PATH": HOST_PATH,
            # An air-gapped site: pip installs only from the local wheelhouse.
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(pip_wheels),
            "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            # One compute thread per rank: a pinned host has one core.
            **({"OMP_NUM_THREADS": "1"} if pin_cpus else {}),
        }
        host_keys = {}
        for index, name in enumerate(names):
            address = lan.add_host(name)
            host_root = root / name
            (host_root / "sshd").mkdir(parents=True)
            host_key = sshd.keygen(host_root / "sshd" / "ssh_host_ed25519_key", name)
            sshd.write_sshd_config(
                host_root / "sshd" / "sshd_config",
                address=address,
                host_key=host_key,
                authorized_keys=authorized,
                pid_file=host_root / "sshd" / "sshd.pid",
                environment=environment,
            )
            host_keys[address] = host_key.with_suffix(".pub")
            hosts[name] = SimulatedHost(
                name, address, lan.namespaces[name], host_root, root, environment,
                cpu=cores[index % len(cores)] if pin_cpus else None,
            )  # fmt: skip
        known = sshd.write_known_hosts(ssh_dir / "known_hosts", host_keys)
        ssh_config = sshd.write_ssh_config(
            ssh_dir / "ssh_config", hosts=lan.addresses, key=key, known_hosts=known
        )
        base = harness_config(root, lan.addresses, key, known)
        cluster = SimulatedCluster(
            root=root,
            lan=lan,
            hosts=hosts,
            ssh_key=key,
            known_hosts=known,
            ssh_config=ssh_config,
            config_path=root / "config.yaml",
            base_config=base,
        )
        cluster.write_config()
        for host in hosts.values():
            host.start()
        return cluster
    except BaseException:
        if cluster is not None:
            cluster.close()
        else:
            for host in hosts.values():
                for pid in lan.pids(host.name):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            lan.delete()
        raise
