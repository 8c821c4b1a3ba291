"""Every `minicluster` command pays for building the whole parser: keep that cheap."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "matplotlib", "pyinfra", "grafana_foundation_sdk")


def test_building_the_parser_imports_nothing_heavy():
    """torch alone takes seconds to import; only the command that runs may pay for it."""
    probe = (
        "import sys; from minicluster.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
