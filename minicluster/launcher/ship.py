"""Ship a project to every node before a job starts; only changed files travel.

Per node: ask for the manifest of its copy (relative path -> sha256), send one gzip tar
stream of the files that are missing or differ together with the list of files to delete,
over the same ssh (a loopback node applies the same stream in-process to its own folder),
then compare one hash over the node's whole manifest with ours. The job environment the
ranks run in (receive.prepare_env) is made in the same round trip. Every node is done
before any node starts; one that fails or does not match stops the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from minicluster.core.config import Config, NodeSettings
from minicluster.core.layout import jobenv_dir, workdir_dir
from minicluster.launcher import receive
from minicluster.launcher.files import ProjectFiles, ShipError, delta, human_bytes
from minicluster.launcher.remote import LauncherError, SshSettings

RECEIVER = "minicluster.launcher.receive"
# Hashing a large tree on a slow node, or pip resolving, can take a while.
MANIFEST_TIMEOUT = 300
INSTALL_TIMEOUT = 1800


@dataclass(frozen=True)
class Placement:
    """Where a project is on one node and the interpreter its ranks run."""

    tree: str
    env: str
    base_python: str  # the node venv's interpreter the job environment is layered on

    @property
    def python(self) -> str:
        return f"{self.env}/bin/python"


@dataclass(frozen=True)
class Shipment:
    node: str
    sent_files: int
    sent_bytes: int  # what travelled: the delete list and the compressed tar
    unchanged: int
    deleted: int
    deps: str | None = None  # what --install-deps did there

    def describe(self) -> str:
        text = (
            f"sent {self.sent_files} files, {human_bytes(self.sent_bytes)} to {self.node}; "
            f"{self.unchanged} unchanged"
        )
        if self.deleted:
            text += f", {self.deleted} deleted"
        return text + (f"; {self.deps}" if self.deps else "")


def project_key(root: Path) -> str:
    """A stable folder name per project, so the next run finds the previous copy."""
    resolved = root.resolve()
    return f"{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:10]}"


def placement(node: NodeSettings, key: str, base_python: str) -> Placement:
    return Placement(workdir_dir(node, key), jobenv_dir(node, key), base_python)


def payload(files: ProjectFiles, send: list[str], delete: list[str]) -> bytes:
    """The bytes one node receives: a JSON header line, then a gzip tar of `send`; nothing
    at all when its copy is up to date (the apply step then only verifies it)."""
    if not send and not delete:
        return b""
    header = json.dumps({"delete": delete, "archive": bool(send)}).encode() + b"\n"
    if not send:
        return header
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|gz") as tar:
        for relative in send:
            tar.add(files.root / relative, arcname=relative, recursive=False)
    return header + buffer.getvalue()


def _read_payload(data: bytes) -> tuple[list[str], io.BytesIO | None]:
    header, _, rest = data.partition(b"\n")
    meta = json.loads(header or b'{"delete": [], "archive": false}')
    return meta["delete"], io.BytesIO(rest) if meta["archive"] else None


def _answer(node: NodeSettings, what: str, result: subprocess.CompletedProcess) -> dict:
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise ShipError(f"{node.name}: {what}: {reason}")
    try:
        return json.loads(result.stdout.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ShipError(f"{node.name}: {what}: no answer from {RECEIVER}") from None


class _Remote:
    def __init__(self, node: NodeSettings, place: Placement, ssh: SshSettings) -> None:
        self.node, self.place, self.ssh = node, place, ssh

    def _run(self, what: str, args: list[str], timeout: float, stdin: bytes | None = None):
        command = [self.place.base_python, "-m", RECEIVER, *args]
        try:
            result = self.ssh.run(self.node, command, timeout=timeout, stdin=stdin)
        except LauncherError as exc:
            raise ShipError(f"{exc} ({what})") from None
        return _answer(self.node, what, result)

    def manifest(self) -> dict[str, str]:
        return self._run("reading its copy", ["manifest", self.place.tree], MANIFEST_TIMEOUT)

    def apply(self, data: bytes) -> str:
        args = ["apply", self.place.tree, self.place.env, self.place.base_python]
        timeout = MANIFEST_TIMEOUT + len(data) / 1e6  # at least 1 MB/s
        return self._run("receiving the files", args, timeout, stdin=data)["digest"]

    def deps(self) -> dict:
        args = ["deps", self.place.tree, self.place.env, self.place.base_python]
        return self._run("installing dependencies", args, INSTALL_TIMEOUT)


class _Local:
    """A loopback node: the same protocol, in-process, into its own install_dir."""

    def __init__(self, node: NodeSettings, place: Placement) -> None:
        self.node, self.place = node, place

    def manifest(self) -> dict[str, str]:
        return receive.manifest(Path(self.place.tree))

    def apply(self, data: bytes) -> str:
        delete, archive = _read_payload(data)
        tree = Path(self.place.tree)
        try:
            digest = receive.apply(tree, delete, archive)
            receive.prepare_env(Path(self.place.env), tree, self.place.base_python)
        except receive.ReceiveError as exc:
            raise ShipError(f"{self.node.name}: receiving the files: {exc}") from None
        return digest

    def deps(self) -> dict:
        tree, env = Path(self.place.tree), Path(self.place.env)
        try:
            return receive.install_deps(tree, env, self.place.base_python)
        except receive.ReceiveError as exc:
            raise ShipError(f"{self.node.name}: installing dependencies: {exc}") from None


def _deps_note(answer: dict) -> str:
    if not answer.get("source"):
        return "no dependencies declared"
    if answer.get("cached"):
        return f"dependencies from {answer['source']} already installed"
    return f"installed dependencies from {answer['source']}"


def ship_to_node(
    node: NodeSettings,
    files: ProjectFiles,
    place: Placement,
    ssh: SshSettings,
    install_deps: bool = False,
) -> Shipment:
    peer = _Local(node, place) if node.is_loopback else _Remote(node, place, ssh)
    remote = peer.manifest()
    send, delete = delta(files.manifest, remote)
    data = payload(files, send, delete)
    digest = peer.apply(data)
    if digest != files.digest:
        raise ShipError(
            f"{node.name}: its copy of {files.root} does not match after the transfer "
            f"(manifest hash {digest[:12]}, expected {files.digest[:12]}); not starting"
        )
    deps = _deps_note(peer.deps()) if install_deps else None
    return Shipment(
        node=node.name,
        sent_files=len(send),
        sent_bytes=len(data),
        unchanged=len(files.manifest) - len(send),
        deleted=len(delete),
        deps=deps,
    )


def ship(
    config: Config,
    files: ProjectFiles,
    places: dict[str, Placement],
    ssh: SshSettings,
    install_deps: bool = False,
) -> list[Shipment]:
    """Ship to every node at once; raises ShipError naming every node that failed."""

    def one(node: NodeSettings) -> Shipment | ShipError:
        try:
            return ship_to_node(node, files, places[node.name], ssh, install_deps)
        except ShipError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(config.nodes)) as pool:
        results = list(pool.map(one, config.nodes))
    failures = [str(r) for r in results if isinstance(r, ShipError)]
    if failures:
        raise ShipError("; ".join(failures))
    return [r for r in results if isinstance(r, Shipment)]
