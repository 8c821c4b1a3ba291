"""Rendered files that may hold a secret (alertmanager.yml: a webhook token) are created
with mode 0600 from the start, never world-readable for a moment."""

from __future__ import annotations

import os
import stat

from minicluster.render import bundle


def test_private_files_are_created_0600_and_public_ones_0644(tmp_path, monkeypatch):
    created: dict[str, int] = {}
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            created[os.path.basename(path)] = mode
            assert flags & os.O_EXCL  # never reuses a file someone else created
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(bundle.os, "open", recording_open)
    old_umask = os.umask(0)  # the mode comes from the code, not from a lucky umask
    try:
        bundle.write_files(
            {"alertmanager/alertmanager.yml": "token: s3cret\n", "prometheus/prometheus.yml": "x"},
            tmp_path,
        )
    finally:
        os.umask(old_umask)
    assert created == {".alertmanager.yml.tmp": 0o600, ".prometheus.yml.tmp": 0o644}
    private = tmp_path / "alertmanager/alertmanager.yml"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "prometheus/prometheus.yml").stat().st_mode) == 0o644
    assert private.read_text() == "token: s3cret\n"
