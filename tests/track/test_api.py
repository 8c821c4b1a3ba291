"""The tracker's numbers, lines and endpoint, read the way Prometheus and run-job read them."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import torch
from prometheus_client import CollectorRegistry

from minicluster import track
from minicluster.core.logformat import parse_line
from minicluster.track.publish import TrackCollector
from tests.track.conftest import settings


def registry_of(t) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(TrackCollector(t.stats, t.info))
    return registry


def lines_of(text: str):
    parsed = [parse_line(line) for line in text.splitlines()]
    return [line for line in parsed if line is not None]


def test_steps_samples_phases_and_loss_are_published_and_logged(tmp_path, capsys):
    t = track.start(total_steps=5, settings=settings(tmp_path), model="mine")
    r = registry_of(t)
    assert r.get_sample_value("trainer_target_steps") == 5
    assert r.get_sample_value("trainer_steps_total") == 0
    assert r.get_sample_value("trainer_loss") is None
    for step in range(1, 6):
        with t.phase("data"):
            pass
        with t.phase("forward"):
            loss = torch.tensor(float(step))
        t.step(samples=8, loss=loss, epoch=0)
        if step == 1:  # not read before the log step: still a tensor summed on the device
            assert isinstance(t._meter.total, torch.Tensor) and t._meter.count == 1
            assert r.get_sample_value("trainer_loss") is None
    assert r.get_sample_value("trainer_steps_total") == 5
    assert r.get_sample_value("trainer_samples_total") == 40
    assert r.get_sample_value("trainer_progress_ratio") == 1
    assert r.get_sample_value("trainer_loss") == 5.0  # the mean of the last interval (5)
    assert r.get_sample_value("trainer_phase_seconds_total", {"phase": "data"}) > 0
    assert r.get_sample_value("trainer_phase_seconds_total", {"phase": "comm"}) == 0
    info = {"job_id": "j1", "world_size": "1", "backend": "-", "device": "cpu", "model": "mine"}
    assert r.get_sample_value("trainer_info", info) == 1
    assert r.get_sample_value("trainer_job_finished") == 0
    t.close()
    assert r.get_sample_value("trainer_job_finished") == 1

    out = lines_of(capsys.readouterr().out)
    assert out == lines_of((tmp_path / "logs" / "j1" / "rank0.log").read_text())
    assert {(line.node, line.rank) for line in out} == {("n1", 0)}
    assert out[0].message.startswith("start job_id=j1 world_size=1 target=5 unit=steps")
    steps = [line.fields() for line in out if line.message.startswith("step ")]
    assert [s["step"] for s in steps] == ["2", "4", "5"]  # every 2, and the last
    assert [s["loss"] for s in steps] == ["1.5000", "3.5000", "5.0000"]
    assert all(s["target"] == "5" and float(s["samples_per_second"]) > 0 for s in steps)
    summaries = [line.message for line in out if line.message.startswith("summary ")]
    assert len(summaries) == 1
    summary = json.loads(summaries[0].removeprefix("summary "))
    assert (summary["steps"], summary["samples"], summary["final_loss"]) == (5, 40, 5.0)
    assert summary["allreduce_bytes"] is None  # nothing watched: not pretended to be 0
    assert track.current() is None


def test_tasks_give_the_same_progress_and_rate(tmp_path, capsys):
    with track.start(total_tasks=4, settings=settings(log_interval=3)) as t:
        r = registry_of(t)
        t.done()
        t.done(n=2)
        assert r.get_sample_value("trainer_progress_ratio") == 0.75
        t.done()
        assert r.get_sample_value("trainer_steps_total") == 4
        assert r.get_sample_value("trainer_target_steps") == 4
    out = lines_of(capsys.readouterr().out)
    steps = [line.fields() for line in out if line.message.startswith("step ")]
    # 3 crossed a multiple of the interval, 4 is the last.
    assert [(s["step"], s["unit"]) for s in steps] == [("3", "tasks"), ("4", "tasks")]
    assert all(float(s["tasks_per_second"]) > 0 for s in steps)
    summary = json.loads(out[-1].message.removeprefix("summary "))
    assert (summary["steps"], summary["unit"]) == (4, "tasks")


def test_backward_after_the_last_bucket_launch_is_comm_and_pause_is_not_step_time():
    t = track.start(total_steps=2, settings=settings())
    comm = t.stats.comm
    with t.phase("backward"):
        comm.launched(torch.empty(10))  # as the counting hook does for the last bucket
        with t.pause():
            pass
    phases = t.stats.phase_seconds
    assert phases["comm"] > 0 and phases["backward"] >= 0
    with t.pause():
        torch.ones(1000).sum()
        time.sleep(0.05)
    t.step()
    assert t.stats.wall_seconds < 0.05
    with pytest.raises(ValueError, match="phase 'thinking': use one of data, forward"):
        t.phase("thinking")


def test_a_second_start_returns_the_same_tracker_with_the_new_target():
    first = track.start(settings=settings())
    second = track.start(total_steps=7)
    assert second is first and first.stats.target_steps == 7


def test_checkpoint_and_own_log_lines(capsys):
    t = track.start(total_steps=3, settings=settings())
    t.step()
    with t.checkpoint():
        pass
    t.log("eval", accuracy=0.5, note="two words")
    r = registry_of(t)
    assert r.get_sample_value("trainer_last_checkpoint_step") == 1
    assert r.get_sample_value("trainer_checkpoint_duration_seconds") >= 0
    out = lines_of(capsys.readouterr().out)
    assert out[-1].message == 'eval accuracy=0.5 note="two words"'


def test_endpoint_and_discovery_file_live_while_tracking(tmp_path):
    run_dir = tmp_path / "run"
    t = track.start(total_steps=2, settings=settings(metrics_port=0, run_dir=run_dir))
    assert t.target is not None and t.target.startswith("127.0.0.1:")
    entry = json.loads((run_dir / "j1-rank0.rank.json").read_text())
    assert (entry["target"], entry["node"], entry["rank"]) == (t.target, "n1", 0)
    t.step(samples=3)
    t.step(samples=3)
    text = requests.get(f"http://{t.target}/metrics", timeout=5).text
    assert "trainer_steps_total 2.0" in text and "trainer_samples_total 6.0" in text
    assert "trainer_step_duration_seconds_count 2.0" in text
    assert "process_resident_memory_bytes" in text
    t.close()
    assert not (run_dir / "j1-rank0.rank.json").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{t.target}/metrics", timeout=2)


def test_a_taken_port_warns_once_and_tracking_goes_on(tmp_path, capsys):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        t = track.start(total_steps=1, settings=settings(metrics_port=port, run_dir=tmp_path))
        t.step()
        t.close()
    out = lines_of(capsys.readouterr().out)
    warnings = [line for line in out if line.level == "WARNING"]
    assert len(warnings) == 1 and f"127.0.0.1:{port} unavailable" in warnings[0].message
    assert t.target is None and not list(tmp_path.iterdir())
    assert any(line.message.startswith("summary ") for line in out)


def test_an_exception_in_the_block_logs_failed_and_no_summary(capsys):
    with pytest.raises(RuntimeError), track.start(total_steps=3, settings=settings()) as t:
        t.step()
        raise RuntimeError("disk on fire")
    out = lines_of(capsys.readouterr().out)
    failed = [line for line in out if line.message.startswith("failed ")]
    assert len(failed) == 1 and failed[0].level == "ERROR"
    assert failed[0].fields()["error"] == "RuntimeError" and "disk on fire" in failed[0].message
    assert not any(line.message.startswith("summary ") for line in out)
    assert t.stats.finished is False


def test_close_in_a_finally_during_an_exception_is_a_failure(capsys):
    t = track.start(total_steps=3, settings=settings())
    with pytest.raises(KeyError):
        try:
            raise KeyError("x")
        finally:
            t.close()
    out = lines_of(capsys.readouterr().out)
    assert [line.message.split(" ")[0] for line in out] == ["start", "failed"]


def test_bad_totals_are_refused():
    with pytest.raises(ValueError, match="not both"):
        track.start(total_steps=1, total_tasks=1, settings=settings())
    with pytest.raises(ValueError, match="must be >= 0"):
        track.start(total_steps=-1, settings=settings())


def test_an_unwritable_log_dir_is_a_warning_and_stdout_keeps_the_lines(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    t = track.start(total_steps=1, settings=settings(log_dir=blocker / "logs"))
    t.step()
    t.close()
    out = lines_of(capsys.readouterr().out)
    assert out[0].level == "WARNING" and "stdout only" in out[0].message
    assert [line.message.split(" ")[0] for line in out[1:]] == ["start", "step", "summary"]
