"""`minicluster demo`: the whole stack and a 2-rank job on this one machine.

1. reuse the demo stack if one is running, else: install what is missing, render the
   local profile into the state folder, start the exporters of both local "nodes",
   Alertmanager, Prometheus and Grafana (when installed), detached, PIDs recorded;
2. run a job with live progress (the run-job launcher), timing how soon Prometheus sees it;
3. write the job's HTML report, print the summary and where to look;
4. with --once, stop everything this run started and exit with the job's status.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from minicluster.core.config import Config, load_config
from minicluster.core.logformat import now_iso
from minicluster.core.profiles import LOCAL_SOURCE, local_profile
from minicluster.core.promapi import Prometheus, PrometheusError
from minicluster.demo import install, services
from minicluster.demo.localstack import ServiceError, http_url
from minicluster.demo.ports import busy_ports, with_free_ports
from minicluster.demo.stack import start_stack
from minicluster.demo.watch import FirstSampleWatch, first_rank_start
from minicluster.launcher.job import JobResult, JobSetup, run_job
from minicluster.launcher.plan import JobOptions, new_job_id, with_overrides
from minicluster.launcher.summary import write_record
from minicluster.report.build import ReportRequest, build_report
from minicluster.report.job import ReportError

# The job: the small MLP, paced by a pause after each step (not counted as training time
# in the summary) so that it runs for about 40 s whatever the machine, and Prometheus
# (3 s scrapes, 2 s discovery refresh) draws it as it runs.
DEMO_TRAINER = {
    "model": "mlp",
    "steps": 300,
    "log_interval": 10,
    "checkpoint_interval": 100,
    "linger_seconds": 8,
    "device": "cpu",
}
DEMO_STEP_SLEEP_SECONDS = 0.1
DEMO_PROMETHEUS = {
    "scrape_interval_seconds": 3,
    "scrape_timeout_seconds": 3,
    "evaluation_interval_seconds": 3,
    "sd_refresh_seconds": 2,
}


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class DemoOptions:
    state_dir: Path
    once: bool = False
    steps: int | None = None
    config_file: Path | None = None  # a config whose nodes are all on this machine
    runs_dir: Path = Path("runs")
    logs_dir: Path = Path("logs")


def demo_profile(state_dir: Path) -> Config:
    return local_profile(state_dir, trainer=DEMO_TRAINER, prometheus=DEMO_PROMETHEUS)


def _check_local(config: Config, source: str) -> None:
    remote = [n.name for n in config.nodes if not n.is_loopback]
    if remote:
        raise DemoError(
            f"{source}: the demo runs on this machine only, but {', '.join(remote)} "
            "is not on a loopback address; for the Minis use make deploy and make run-job"
        )


def _grafana_ready(config: Config) -> bool:
    return install.installed(config.grafana.binary) and Path(config.grafana.homepath).is_dir()


def _with_homebrew_grafana(config: Config) -> Config:
    """macOS: Grafana's homepath from Homebrew when the configured one does not exist."""
    if not install.installed(config.grafana.binary) or Path(config.grafana.homepath).is_dir():
        return config
    prefix = install.homebrew_prefix("grafana")
    if prefix is None:
        return config
    data = config.model_dump(mode="json")
    data["grafana"]["homepath"] = str(prefix / "share" / "grafana")
    return Config.model_validate(data)


def _plain(config: Config, say) -> Config:
    """The demo runs on loopback only, where nobody else can connect, over plain HTTP: it
    has no cluster CA to serve TLS with. A config asking for TLS is run plain, and told."""
    if not config.security.tls:
        return config
    say("security.tls is ignored by the demo: its services listen on loopback only, plain HTTP")
    return config.model_copy(update={"security": config.security.model_copy(update={"tls": False})})


def prepare_config(options: DemoOptions, say) -> Config:
    """The config the new stack runs with: installed services, free ports."""
    if options.config_file:
        source = str(options.config_file)
        config = _plain(load_config(options.config_file), say)
        _check_local(config, source)
        install.install_missing(config)
        missing = install.missing_services(config, with_grafana=False)
        if missing:
            raise DemoError(f"{source}: not installed: {', '.join(missing)} (check *.binary)")
        busy = busy_ports(config)
        if busy:
            listed = ", ".join(f"{what} {port}" for what, port in busy)
            raise DemoError(f"{source}: in use already: {listed}")
        return _with_homebrew_grafana(config)
    installed_now = install.install_missing(demo_profile(options.state_dir))
    if installed_now:
        say(f"installed {', '.join(installed_now)}")
    # Built again: the local profile takes the binaries it finds on PATH.
    config = demo_profile(options.state_dir)
    missing = install.missing_services(config, with_grafana=False)
    if missing:
        raise DemoError(f"still not on PATH after installing: {', '.join(missing)}")
    config, notes = with_free_ports(config, LOCAL_SOURCE)
    for note in notes:
        say(note)
    return _with_homebrew_grafana(config)


def write_config(state_dir: Path, config: Config) -> Path:
    """The demo's config as a file: the exporters and the trainers read it."""
    path = state_dir / "demo" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_yaml())
    return path


def running_stack(state_dir: Path, say) -> services.StackRecord | None:
    """The record of a demo stack that is still fully running, else None (a partly dead
    one is stopped first)."""
    try:
        record = services.load(state_dir)
    except ValueError as exc:
        raise DemoError(f"{exc}; stop what it lists by hand, then delete it") from None
    if record is None or not record.running:
        return None
    if record.services and all(services.is_alive(s) for s in record.services):
        return record
    say("the previous demo stack is partly gone; stopping the rest and starting anew")
    for line in services.stop_services(state_dir, record):
        say(line)
    return None


def _report(config: Config, job: JobResult, options: DemoOptions, prom_url: str) -> Path | None:
    request = ReportRequest(
        job_id=job.job_id,
        prometheus_url=prom_url,
        out=options.runs_dir / f"{job.job_id}.html",
        runs_dir=options.runs_dir,
        scrape_interval_seconds=config.prometheus.scrape_interval_seconds,
        interfaces={n.name: n.interface for n in config.nodes},
    )
    return build_report(request)


def _where_to_look(
    console: Console, config: Config, record, job: JobResult, report, first, after_start
):
    master = config.master.address
    prom = http_url(master, config.prometheus.port)
    grafana_running = any(s.name == "grafana" for s in record.services)
    console.print()
    console.print("[bold]Where to look[/bold]")
    rows = [
        ("Prometheus", f"{prom}  (try: job:trainer_samples:sum_rate)"),
        ("Alertmanager", http_url(master, config.alertmanager.port)),
    ]
    if grafana_running:
        password = Path(config.grafana.admin_password_file).expanduser()
        rows.append(
            (
                "Grafana",
                f"{http_url(master, config.grafana.port)}  user {config.grafana.admin_user}, "
                f"password in {password}",
            )
        )
    else:
        rows.append(("Grafana", "not installed (Debian has no package; on macOS: brew)"))
    rows.append(("Security", "plain HTTP on loopback only; a deployed cluster: docs/security.md"))
    rows.append(("Report", str(report.resolve()) if report else "not written (see above)"))
    rows.append(("Merged log", str(job.log_path)))
    rows.append(("Summary", str(job.record_path)))
    if first is not None:
        detail = f", {after_start:.1f} s after the first rank started" if after_start else ""
        rows.append(("First sample", f"in Prometheus {first:.1f} s after launch{detail}"))
    else:
        rows.append(("First sample", "never seen in Prometheus during the job"))
    for name, value in rows:
        console.print(f"  {name:<13} {value}", markup=False, highlight=False)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(options: DemoOptions) -> int:
    out, err = Console(), Console(stderr=True)

    def say(text: str) -> None:
        err.print(text, markup=False, highlight=False)

    # SIGTERM and SIGHUP (terminal closed) end the demo like Ctrl-C, cleanup included.
    stop_signals = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_keyboard_interrupt) for sig in stop_signals}
    record: services.StackRecord | None = None
    started_here = False
    try:
        record = running_stack(options.state_dir, say)
        if record is not None:
            say(
                f"the demo stack is running already (make demo-stop stops it); "
                f"config {record.config_file}"
            )
            config = load_config(record.config_file)
        else:
            config = prepare_config(options, say)
            config_file = write_config(options.state_dir, config)
            record = services.StackRecord(str(config_file), now_iso())
            try:
                entries = start_stack(config, config_file, _grafana_ready(config), say)
            except ServiceError as exc:
                raise DemoError(str(exc)) from None
            record.services = entries
            services.save(options.state_dir, record)
            started_here = True
        job_options = JobOptions(steps=options.steps, step_sleep=DEMO_STEP_SLEEP_SECONDS)
        job_config = with_overrides(config, job_options, f"{record.config_file} (demo)")
        setup = JobSetup(
            config=job_config,
            options=job_options,
            config_paths={n.name: record.config_file for n in config.nodes},
            logs_dir=options.logs_dir,
            runs_dir=options.runs_dir,
        )
        prom_url = http_url(config.master.address, config.prometheus.port)
        job_id = new_job_id()
        with FirstSampleWatch(Prometheus(prom_url), job_id) as watch:
            job = run_job(setup, out=out, err=err, job_id=job_id)
        after_start = watch.seconds_after(first_rank_start(job.log_path))
        demo_facts = {
            "first_sample_seconds": watch.seconds,
            "first_sample_after_rank_start_seconds": after_start,
            "prometheus": prom_url,
        }
        write_record(options.runs_dir, job.job_id, {"demo": demo_facts})
        report = None
        try:
            report = _report(config, job, options, prom_url)
        except (ReportError, PrometheusError) as exc:
            say(f"report not written: {exc}")
        _where_to_look(out, config, record, job, report, watch.seconds, after_start)
        return job.exit_code
    except (DemoError, install.InstallError) as exc:
        print(f"minicluster demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if record is not None and not started_here and options.once and record.services:
            say("--once: the stack was running before this demo, so it keeps running")
        if record is not None and started_here:
            if options.once:
                say("stopping the demo stack (--once)")
                for line in services.stop_services(options.state_dir, record):
                    say(f"  {line}")
            else:
                say("the stack keeps running: make demo-stop stops it")


def stop_demo(state_dir: Path) -> int:
    record = services.load(state_dir)
    if record is None or not record.running:
        print("no demo stack is running")
        return 0
    lines = services.stop_services(state_dir, record)
    for line in lines:
        print(line)
    return 1 if any("STILL RUNNING" in line for line in lines) else 0
