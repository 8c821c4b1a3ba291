"""Simulated Mac Minis for tests: the pair `mini-red` (master) and `mini-yellow` (worker), or
any number of hosts with names of your choosing.

Linux stands in for macOS: each host is a network namespace (addresses 10.77.<n>.2, .3, ...,
interface `en0`, joined by a bridge whose .1 address is the control machine, i.e. the test
process) with its own sshd, its own /Library/LaunchDaemons, /opt (install_dir /opt/minicluster)
and /usr/local/sbin (bind mounts in a private mount namespace), the hostname of a Mini, a
test-only `launchctl` stand-in first on its PATH (tests/hosts/launchctl_standin.py), a
test-only `brew` at Homebrew's /opt/homebrew/bin/brew (tests/hosts/brew_standin.py) whose
`brew install prometheus alertmanager` links Debian's prometheus, promtool,
prometheus-alertmanager and amtool into /opt/homebrew, and gid 0 named `wheel`. So deploy
runs exactly the path it runs on a Mac. Grafana is not installed (brew has no formula for
it here, and the config points it elsewhere): deploy renders and checks its files and
skips starting it. The hosts have no
route off the bridge; their pip installs from a local wheelhouse (tests/hosts/wheelhouse.py).
Needs root. Traffic only ever goes to the harness's own namespaces.

Use it from another test folder by importing the fixture into that folder's conftest.py:

    from tests.hosts.fixtures import two_minis  # noqa: F401

`two_minis` (session scope) yields a `SimulatedCluster`:

    .config_path       config.yaml for the pair (ssh user root, the harness key and
                       known_hosts, install_dir /opt/minicluster, exporter port 9100,
                       python = an interpreter present on the hosts, Homebrew's default
                       prometheus.binary and alertmanager.binary, grafana paths under
                       the harness's tmp folder, 2 s scrape interval)
    .config            that file loaded as a minicluster Config
    .write_config(path=None, nodes=None, **sections)
                       rewrite it (or write a copy to `path`) with sections merged in,
                       e.g. write_config(prometheus={"scrape_interval_seconds": 3});
                       `nodes` keeps only those hosts under `nodes:`
    .master, .workers  the first host, the others
    .red, .yellow, .hosts["mini-red"]   SimulatedHost objects
    .ssh_key, .known_hosts, .ssh_config  (`ssh -F cluster.ssh_config mini-red ...` works)
    .root              the harness's tmp folder

`SimulatedHost`:

    .name, .address, .netns
    .run(args | "shell string", check=True, timeout=60)
                       run on the host without ssh (its namespaces and PATH); returns
                       CompletedProcess with text stdout/stderr
    .ssh("command", check=True)        the same through real ssh
    .path("/opt/minicluster/config.yaml")
                       where a host path is on the control machine's file system
    .service_pid(label)                pid of a running launchd job (launchctl print)
    .alive(pid)                        running (an exited, unreaped process is not)
    .launchd_job(label)                the stand-in's record: plist, pid, runs; or None
    .brew("list", "--versions")        the host's brew stand-in (not on its PATH)
    .stop_sshd(), .start_sshd(), with .sshd_stopped(): ...
    with .clock_offset(seconds): ...   the host's `date` reports a shifted clock

A cluster of any size (the first name is the master), e.g. in a session fixture:

    from tests.hosts.fixtures import simulated_minis
    with simulated_minis(root, ("mini-one", "mini-two", "mini-three", "mini-four")) as c:
        c.master, c.workers, c.hosts["mini-three"]
        c.write_config(nodes=["mini-one", "mini-two"])   # only these under `nodes:`

It pins each host's sshd (and so its exporter and ranks) to one core, round robin, with
OMP_NUM_THREADS=1 (pin_cpus=False leaves scheduling alone, as `two_minis` does).

Shaped links: `tests.hosts.shaping.shaped(cluster.lan, "1gbit")` (or "10gbit", or bits/s)
limits every host's en0 with tc tbf for a `with` block; `shape`/`unshape` do it by hand.

Nothing is deployed by the fixture: run `minicluster deploy --config <config_path>` (see
tests/deploy/conftest.py for a module fixture that does, once). Teardown kills every
process in the hosts' namespaces (all of them were started by the harness or through it)
and deletes the namespaces and the bridge.
"""

from tests.hosts.cluster import SimulatedCluster, SimulatedHost

__all__ = ["SimulatedCluster", "SimulatedHost"]
