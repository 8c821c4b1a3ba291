"""OpenSSH for the simulated hosts: keys made at test time, one sshd_config per host.

The control machine gets one ed25519 client key; each host gets its own ed25519 host key.
The known_hosts file is written from those host keys up front, so deploy and doctor can
check host keys strictly (no trust-on-first-use, nothing written to ~/.ssh).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def keygen(path: Path, comment: str) -> Path:
    """An ed25519 key pair at `path` / `path.pub` without a passphrase."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )
    return path


def write_known_hosts(path: Path, entries: dict[str, Path]) -> Path:
    """`entries` maps an address to that host's public host key file."""
    lines = []
    for address, public_key in entries.items():
        key_type, key = public_key.read_text().split()[:2]
        lines.append(f"{address} {key_type} {key}\n")
    path.write_text("".join(lines))
    return path


def write_sshd_config(
    path: Path,
    *,
    address: str,
    host_key: Path,
    authorized_keys: Path,
    pid_file: Path,
    environment: dict[str, str],
) -> Path:
    """A root-login, key-only sshd listening on the host's LAN address only.

    `environment` goes into every session with SetEnv (the host's PATH and pip settings).
    """
    set_env = " ".join(f'"{key}={value}"' for key, value in environment.items())
    path.write_text(
        f"""ListenAddress {address}
Port 22
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
# The key files live under /tmp (world-writable), which StrictModes refuses.
StrictModes no
Subsystem sftp internal-sftp
SetEnv {set_env}
"""
    )
    return path


def write_ssh_config(path: Path, *, hosts: dict[str, str], key: Path, known_hosts: Path) -> Path:
    """An ssh_config so a person (or `ssh -F`) can reach the hosts by name."""
    blocks = [
        f"""Host {name}
    HostName {address}
    User root
    IdentityFile {key}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts}
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
"""
        for name, address in hosts.items()
    ]
    path.write_text("\n".join(blocks))
    return path
