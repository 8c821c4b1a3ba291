"""The node's side of shipping a project: its manifest, applying a delta, the job environment.

Run on a node over ssh as `<venv python> -m minicluster.launcher.receive COMMAND ...`, or
called in-process for a loopback node. Standard library only, and every answer is one JSON
line on stdout; a failure is one line on stderr and exit status 1.

    manifest TREE            {relative path: sha256} of the files shipped to TREE
    apply TREE ENV BASE      stdin: a JSON line {"delete": [paths], "archive": bool}, then
                             (if archive) a gzip tar stream of the changed files. Applies
                             both, makes ENV (see `prepare_env`) and answers
                             {"digest": manifest digest of TREE afterwards}
    deps TREE ENV BASE       installs the project's dependencies into ENV with BASE's pip,
                             unless the same requirements are installed already

BASE is the node venv's interpreter, which the job environment is layered on.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
DEPS_STAMP = ".minicluster-deps-sha256"


class ReceiveError(Exception):
    """A node could not take the files or build the environment; one line, the cause."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(manifest: dict[str, str]) -> str:
    """One hash over a whole tree: every relative path and its content hash, sorted."""
    digest = hashlib.sha256()
    for path in sorted(manifest):
        digest.update(f"{path}\0{manifest[path]}\n".encode())
    return digest.hexdigest()


def shipped_record(tree: Path) -> Path:
    """The paths the launcher put in `tree` (a JSON list), kept beside it."""
    return tree.parent / f"{tree.name}.shipped.json"


def _shipped_paths(tree: Path) -> set[str]:
    try:
        return set(json.loads(shipped_record(tree).read_text()))
    except (OSError, ValueError):  # nothing shipped yet (or unreadable: apply will say why)
        return set()


def manifest(tree: Path) -> dict[str, str]:
    """{relative path: sha256} of the files shipped to `tree` that are still there.

    Only shipped files count: what the program wrote next to them (outputs, checkpoints,
    __pycache__) is its own, never deleted and never part of the comparison.
    """
    found: dict[str, str] = {}
    for relative in sorted(_shipped_paths(tree)):
        path = tree / relative
        if path.is_file():
            found[relative] = file_sha256(path)
    return found


def _inside(tree: Path, relative: str) -> Path:
    target = (tree / relative).resolve()
    if not target.is_relative_to(tree.resolve()):
        raise ReceiveError(f"refusing a path outside the project: {relative}")
    return target


def apply(tree: Path, delete: list[str], archive: BinaryIO | None) -> str:
    """Write the changed files, remove the deleted ones; the digest of the shipped files."""
    try:
        tree.mkdir(parents=True, exist_ok=True)
        paths = _shipped_paths(tree)
        if archive is not None:
            with tarfile.open(fileobj=archive, mode="r|*") as tar:
                for member in tar:
                    tar.extract(member, tree, filter="data")
                    if member.isfile():
                        paths.add(member.name)
        for relative in delete:
            target = _inside(tree, relative)
            target.unlink(missing_ok=True)
            paths.discard(relative)
            # Folders the deletion emptied go too, up to the tree.
            for parent in target.parents:
                if parent == tree.resolve() or any(parent.iterdir()):
                    break
                parent.rmdir()
        record = shipped_record(tree)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(paths)))
        os.replace(tmp, record)
    except (OSError, tarfile.TarError) as exc:
        raise ReceiveError(f"cannot write {tree}: {exc}") from exc
    return manifest_digest(manifest(tree))


def _site_dirs() -> list[str]:
    """This interpreter's site-packages (the node venv's, when BASE runs this module)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def env_site_packages(env: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return env / "lib" / version / "site-packages"


def pth_files(tree: Path, base_site_dirs: list[str]) -> dict[str, str]:
    """The job environment's .pth files: name -> content.

    The node venv's site-packages go in through site.addsitedir, so their own .pth files
    (editable installs, distutils shims) are processed as in the node venv; the project
    root and its src/ are plain path lines, which is what an editable install writes.
    """
    layered = "".join(f"import site; site.addsitedir({d!r})\n" for d in base_site_dirs)
    project = [str(tree)]
    if (tree / "src").is_dir():
        project.append(str(tree / "src"))
    return {
        "_minicluster_node_venv.pth": layered,
        "_minicluster_project.pth": "".join(f"{p}\n" for p in project),
    }


def prepare_env(env: Path, tree: Path, base_python: str) -> Path:
    """A venv made from the node venv's interpreter whose .pth files layer it on that venv
    and put the project on the path; torch and minicluster are not installed again."""
    python = env_python(env)
    try:
        if not python.exists():
            env.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [base_python, "-m", "venv", "--without-pip", str(env)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["venv failed"])[-1]
                raise ReceiveError(f"cannot create the job environment {env}: {reason}")
        site_packages = env_site_packages(env)
        site_packages.mkdir(parents=True, exist_ok=True)
        for name, content in pth_files(tree, _site_dirs()).items():
            path = site_packages / name
            if not path.exists() or path.read_text() != content:
                path.write_text(content)
    except OSError as exc:
        raise ReceiveError(f"cannot write the job environment {env}: {exc}") from exc
    return python


def requirements(tree: Path) -> tuple[list[str], str | None]:
    """(pip arguments, the file they come from): requirements.txt, else pyproject's
    [project].dependencies; ([], None) when the project declares none."""
    req = tree / "requirements.txt"
    if req.is_file():
        return ["-r", str(req)], "requirements.txt"
    pyproject = tree / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ReceiveError(f"pyproject.toml: {exc}") from exc
        deps = data.get("project", {}).get("dependencies", [])
        if deps:
            return list(deps), "pyproject.toml [project].dependencies"
    return [], None


def _requirements_hash(tree: Path, args: list[str]) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for arg in args:
        digest.update(arg.encode() + b"\0")
    if args[:1] == ["-r"]:
        digest.update(Path(args[1]).read_bytes())
    return digest.hexdigest()


def _pip_failure(stderr: str) -> str:
    """pip's own one-line reason (it names the requirement), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR: No matching distribution found for"):
            return line.removeprefix("ERROR: ")
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    return errors[0] if errors else (lines[-1] if lines else "pip failed")


def install_deps(tree: Path, env: Path, base_python: str) -> dict:
    tree, env = tree.absolute(), env.absolute()  # pip runs in the tree
    args, source = requirements(tree)
    if not args:
        return {"installed": False, "source": None}
    stamp = env / DEPS_STAMP
    wanted = _requirements_hash(tree, args)
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return {"installed": False, "source": source, "cached": True}
    pip = [base_python, "-m", "pip", "--python", str(env_python(env)), "install"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        cwd=tree,
        check=False,
    )
    if done.returncode != 0:
        raise ReceiveError(f"installing {source} failed: {_pip_failure(done.stderr)}")
    stamp.write_text(wanted + "\n")
    return {"installed": True, "source": source}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        command, tree = args[0], Path(args[1])
        if command == "manifest":
            answer: dict = manifest(tree)
        elif command == "apply":
            env, base = Path(args[2]), args[3]
            header = json.loads(sys.stdin.buffer.readline() or b"{}")
            archive = sys.stdin.buffer if header.get("archive") else None
            digest = apply(tree, header.get("delete", []), archive)
            prepare_env(env, tree, base)
            answer = {"digest": digest}
        elif command == "deps":
            answer = install_deps(tree, Path(args[2]), args[3])
        else:
            raise ReceiveError(f"unknown command {command}")
    except (IndexError, ValueError):
        print("usage: receive manifest|apply|deps TREE [ENV BASE]", file=sys.stderr)
        return 2
    except ReceiveError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
