"""run-job's own-program command line: what it accepts, and bad input that starts nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from minicluster.cli import main
from minicluster.launcher.files import ShipError
from minicluster.launcher.plan import JobOptions, UserJob, plan_job
from minicluster.launcher.remote import remote_shell_command
from minicluster.launcher.usercmd import CommandError, parse_command
from tests.launcher.conftest import loopback_config, processes_naming, write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sharding"


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["python", "run_distributed.py", "--items", "9"], ["run_distributed.py", "--items", "9"]),
        (["python3", "src/tests/test_sharding.py"], ["src/tests/test_sharding.py"]),
        (
            ["python", "-m", "src.tests.test_sharding", "-v"],
            ["-m", "src.tests.test_sharding", "-v"],
        ),
        # src/ is on the path on the nodes, so its packages are modules of the project too.
        (["python", "-m", "common.sharding"], ["-m", "common.sharding"]),
        (["python", str(EXAMPLE / "run_distributed.py")], ["run_distributed.py"]),
    ],
)
def test_accepted_commands_and_what_the_nodes_run(argv, target):
    assert parse_command(argv, EXAMPLE).target == target


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command after --"),
        (["ruby", "x.rb"], "must start with python, not 'ruby'"),
        (["/usr/bin/python3", "x.py"], "must start with python"),
        (["python"], "python needs a script or -m MODULE"),
        (["python", "-c", "print(1)"], "python option '-c' is not supported"),
        (["python", "-m"], "-m needs a module name"),
        (["python", "-m", "src.tests.nothere"], "no module src.tests.nothere in"),
        (["python", "nothere.py"], "nothere.py: no such script in"),
        (["python", "/etc/hostname"], "must be inside the project folder"),
    ],
)
def test_bad_commands_are_one_line_naming_the_problem(argv, message):
    with pytest.raises(CommandError, match=message) as caught:
        parse_command(argv, EXAMPLE)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ShipError)


def test_every_node_runs_its_job_environment_in_its_copy_with_the_job_settings(tmp_path):
    config = loopback_config(tmp_path / "state")
    user = UserJob(
        target=["-m", "src.tests.test_sharding"],
        places={
            n.name: (f"/jobs/{n.name}/env/bin/python", f"/jobs/{n.name}/tree") for n in config.nodes
        },
    )
    paths = {n.name: f"/cfg/{n.name}.yaml" for n in config.nodes}
    plan = plan_job(config, JobOptions(), paths, "job-1", "/local/python", user)
    assert plan.target_steps == 0  # unknown until the ranks say
    yellow = plan.commands[1]
    assert yellow.argv[0] == "/jobs/mini-yellow/env/bin/python"
    assert yellow.argv[-8:] == [
        "-m",
        "--",
        "minicluster.launcher.jobstore",
        "rank",
        "-m",
        "minicluster.track.observe",
        "-m",
        "src.tests.test_sharding",
    ]
    assert "--rdzv-id=job-1" in yellow.argv
    assert yellow.cwd == "/jobs/mini-yellow/tree"
    assert yellow.env == {
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONUNBUFFERED": "1",
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
        "MINICLUSTER_CONFIG": "/cfg/mini-yellow.yaml",
        "MINICLUSTER_NODE": "mini-yellow",
        "MINICLUSTER_JOB_ID": "job-1",
    }
    shell = remote_shell_command(yellow)
    assert shell.startswith("echo minicluster-pid=$$; cd /jobs/mini-yellow/tree && exec ")
    # The settings a user's program takes too reach minicluster.track on every rank.
    tuned = JobOptions(linger_seconds=8.0, log_interval=5, no_metrics=True)
    env = plan_job(config, tuned, paths, "job-1", "/local/python", user).commands[0].env
    assert (env["MINICLUSTER_LINGER"], env["MINICLUSTER_LOG_INTERVAL"]) == ("8.0", "5")
    assert env["MINICLUSTER_METRICS_PORT"] == "off"
    # The rendezvous settings are the built-in trainer's.
    trainer = plan_job(config, JobOptions(), paths, "job-1", "/local/python")
    assert yellow.argv[1:12] == trainer.commands[1].argv[1:12]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the example as the current folder; the local profile's nodes in state/."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    monkeypatch.chdir(root)
    return root, tmp_path / "state"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--", "ruby", "x.rb"], "the command must start with python, not 'ruby'"),
        (["python", "run_distributed.py"], "unexpected 'python': put your command after --"),
        (["--workdir", "/no/such/dir", "--", "python", "x.py"], "--workdir /no/such/dir: no such"),
        (["--", "python", "missing.py"], "missing.py: no such script in"),
        (["--", "python", "-m", "src.nothere"], "no module src.nothere in"),
        (["--workdir", "."], "--workdir and --install-deps need a command after --"),
        (["--steps", "3", "--", "python", "run_distributed.py"], "--steps is for the built-in"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_shipped_or_started(
    project, capsys, args, message
):
    root, state = project
    assert main(["run-job", "--local", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicluster: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not state.exists() or not any(state.rglob("jobs"))
    assert not (root / "runs").exists()


def test_a_script_that_gitignore_excludes_is_refused(project, capsys):
    root, state = project
    (root / ".gitignore").write_text("run_distributed.py\n")
    assert main(["run-job", "--local", "--", "python", "run_distributed.py"]) == 2
    err = capsys.readouterr().err
    assert "run_distributed.py is not shipped (.gitignore excludes it)" in err
    assert not any(state.rglob("jobs"))


def test_a_node_that_cannot_receive_the_files_starts_nothing_anywhere(tmp_path, capsys):
    config = loopback_config(tmp_path / "state")
    path = write_config(config, tmp_path / "config.yaml")
    Path(config.node("mini-yellow").install_dir).parent.mkdir(parents=True, exist_ok=True)
    Path(config.node("mini-yellow").install_dir).write_text("not a folder\n")
    runs = tmp_path / "runs"
    code = main(
        ["run-job", "--config", str(path), "--runs-dir", str(runs), "--workdir", str(EXAMPLE),
         "--", "python", "run_distributed.py"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("not started")]
    assert len(lines) == 1 and "mini-yellow: receiving the files: cannot write" in lines[0]
    assert "Not a directory" in lines[0]
    assert not runs.exists()
    assert not processes_naming(str(path))
