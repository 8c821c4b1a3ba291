"""Files and folders that hold secrets: private from their first byte, replaced atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644
FOLDER = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` as 0700 (or tighten it when others can read it)."""
    path.mkdir(mode=FOLDER, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(FOLDER)
    return path


def tighten(path: Path) -> None:
    """An existing secret others can read becomes 0600."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(PRIVATE)


def write_file(path: Path, data: bytes, mode: int = PRIVATE) -> None:
    """Write `data` to `path` with `mode` from the first byte; readers see old or new, whole.

    The temporary name is in the same folder, so the rename never crosses file systems;
    O_EXCL means a file someone else placed there is never written through.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
