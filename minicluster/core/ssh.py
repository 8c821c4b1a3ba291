"""How a node is reached over ssh, in one place: deploy's pyinfra and the launcher's OpenSSH.

`SshTarget.of(node)` reads the node's ssh settings once; `pyinfra_host_data()` is what
pyinfra's ssh connector gets (deploy, undeploy, doctor) and `openssh_argv()` the `ssh`
command line the launcher runs. Both say the same user, host, port, key, known_hosts
file and host key policy:

    ssh_known_hosts_file set   that file is the trust anchor: StrictHostKeyChecking=yes
    not set                    ~/.ssh/known_hosts, a new host's key is recorded on first
                               contact and a changed one refused (accept-new, pyinfra's
                               own default)

A key given in the config is the only key offered (IdentitiesOnly / no key search), and
nothing ever prompts: a missing key or unknown host fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minicluster.core.config import NodeSettings

CONNECT_TIMEOUT_SECONDS = 10
# A dead link is noticed within ~15 s instead of TCP's minutes.
SERVER_ALIVE_INTERVAL_SECONDS = 5
SERVER_ALIVE_COUNT_MAX = 3


def _expand(path: str | None) -> str | None:
    return str(Path(path).expanduser()) if path else None


@dataclass(frozen=True)
class SshTarget:
    """One node as an ssh destination."""

    name: str  # the node's name, for messages
    user: str
    host: str
    port: int = 22
    key: str | None = None  # private key file, ~ expanded
    known_hosts: str | None = None  # known_hosts file, ~ expanded
    config_file: str | None = None  # an ssh_config file to read instead of ~/.ssh/config
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS

    @classmethod
    def of(
        cls,
        node: NodeSettings,
        *,
        config_file: str | None = None,
        connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
    ) -> SshTarget:
        return cls(
            name=node.name,
            user=node.ssh_user,
            host=node.address,
            port=node.ssh_port,
            key=_expand(node.ssh_key),
            known_hosts=_expand(node.ssh_known_hosts_file),
            config_file=_expand(config_file),
            connect_timeout=connect_timeout,
        )

    @property
    def strict_host_key_checking(self) -> str:
        """OpenSSH's StrictHostKeyChecking value (pyinfra takes the same words)."""
        return "yes" if self.known_hosts else "accept-new"

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}"

    def pyinfra_host_data(self) -> dict:
        """pyinfra's ssh connector settings (its connect timeout is the State's config)."""
        data: dict = {
            "ssh_hostname": self.host,
            "ssh_port": self.port,
            "ssh_user": self.user,
            "ssh_strict_host_key_checking": self.strict_host_key_checking,
        }
        if self.key:
            data["ssh_key"] = self.key
            data["ssh_look_for_keys"] = False  # only the configured key
        if self.known_hosts:
            data["ssh_known_hosts_file"] = self.known_hosts
        if self.config_file:
            data["ssh_config_file"] = self.config_file
        return data

    def openssh_options(self) -> list[str]:
        """The `-o` options, in the order they are given."""
        options = [
            "BatchMode=yes",
            f"ConnectTimeout={self.connect_timeout}",
            f"ServerAliveInterval={SERVER_ALIVE_INTERVAL_SECONDS}",
            f"ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}",
        ]
        if self.key:
            options.append("IdentitiesOnly=yes")
        if self.known_hosts:
            options.append(f"UserKnownHostsFile={self.known_hosts}")
        options.append(f"StrictHostKeyChecking={self.strict_host_key_checking}")
        return options

    def openssh_argv(
        self, remote_command: str, extra_options: tuple[str, ...] | list[str] = (), ssh: str = "ssh"
    ) -> list[str]:
        """`ssh ... -- user@host remote_command`; `extra_options` are more `-o` values.

        Options given first win in OpenSSH, so the node's settings come before the extra
        ones; `--` ends the options, so no host name can be read as one.
        """
        argv = [ssh, "-T", "-p", str(self.port)]
        if self.config_file:
            argv += ["-F", self.config_file]
        if self.key:
            argv += ["-i", self.key]
        for option in [*self.openssh_options(), *extra_options]:
            argv += ["-o", option]
        return [*argv, "--", self.destination, remote_command]
