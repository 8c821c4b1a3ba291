"""Where this source tree is: files holding secrets are refused inside it."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def inside_repository(path: Path) -> bool:
    """True when `path` (after ~ and symlinks) lies inside the source checkout.

    An installed wheel has no pyproject.toml beside the package: nothing counts as inside.
    """
    try:
        path.expanduser().resolve().relative_to(REPO_ROOT)
    except ValueError:
        return False
    return (REPO_ROOT / "pyproject.toml").is_file()
