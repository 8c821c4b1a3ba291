from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.core.config import Config
from minicluster.security.pki import Pki, ensure_pki
from tests.security.helpers import cluster_config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return cluster_config(tmp_path / "pki")


@pytest.fixture
def pki(config: Config) -> Pki:
    return ensure_pki(config)
