"""Command line: `python -m minicluster.exporter` and `minicluster exporter` share these flags."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from minicluster.core.config import Config, ConfigError, ExporterSettings, load_config
from minicluster.exporter import options as opts
from minicluster.exporter.registry import build_collectors, collector_names
from minicluster.exporter.scrape import ScrapeGuard
from minicluster.exporter.server import ExporterServer, tune_gc
from minicluster.exporter.webconfig import load_web_config

EXIT_USAGE = 2
log = logging.getLogger("exporters")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags besides --config (minicluster's CLI adds its own --config/--local)."""
    parser.add_argument(
        "--node", metavar="NAME", help="which node of the config this is (default: by hostname)"
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to bind (default: the node's address and exporter_port; "
        "127.0.0.1:9100 without a config file; port 0 picks a free one)",
    )
    parser.add_argument(
        "--web-config",
        metavar="FILE",
        help="TLS and basic-auth file in node_exporter's web-config format "
        "(default: exporter.web_config_file)",
    )
    parser.add_argument(
        "--collector.disable",
        dest="disabled",
        metavar="NAME",
        action="append",
        default=[],
        help=f"turn a collector off (repeatable): {', '.join(sorted(collector_names()))}",
    )
    parser.add_argument(
        "--collector.textfile.directory",
        dest="textfile_directory",
        metavar="DIR",
        help="directory of *.prom files to serve (default: exporter.textfile_directory)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minicluster.exporter",
        description="Node exporter: node_exporter's metrics, correct on macOS, plus "
        "/sd for trainer ranks. Without --config it uses built-in defaults.",
    )
    parser.add_argument("--config", metavar="FILE", help="config.yaml (default: none)")
    add_arguments(parser)
    return parser


def resolve_options(args: argparse.Namespace, config: Config | None, source: str) -> opts.Options:
    disabled = frozenset(args.disabled)
    unknown = disabled - collector_names()
    if unknown:
        known = ", ".join(sorted(collector_names()))
        raise ConfigError(
            "command line", "--collector.disable", f"unknown collector {min(unknown)!r} ({known})"
        )
    try:
        listen = opts.parse_listen(args.listen) if args.listen else None
    except ValueError as exc:
        raise ConfigError("command line", "", str(exc)) from None
    textfile = getattr(args, "textfile_directory", None)
    if textfile is not None:
        try:
            # Relative to where the command was typed, as node_exporter takes it.
            textfile = ExporterSettings.check_textfile_directory(os.path.abspath(textfile))
        except ValueError as exc:
            raise ConfigError("command line", "--collector.textfile.directory", str(exc)) from None
    if config is None:
        return opts.defaults(args.node, listen, disabled, args.web_config, textfile)
    node = opts.pick_node(config, args.node, source)
    return opts.from_config(config, node, listen, disabled, args.web_config, textfile)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Linux/glibc only: at most `arenas` malloc arenas instead of one per thread.

    Each connection and collector thread otherwise gets its own arena, which keeps the
    response buffers it freed resident: RSS crept from 46 to 51 MB over 5,000 scrapes at
    concurrency 10, and stays at 47 MB with two arenas. macOS's allocator has no arenas.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (musl): nothing to tune
    m_arena_max = -8  # <malloc.h>
    libc.mallopt(m_arena_max, arenas)


def serve(
    options: opts.Options,
    sources: Mapping[str, Callable[[], Any]] | None = None,
    platform: str | None = None,
) -> int:
    """Run until SIGTERM or Ctrl-C. Prints the URL it listens on once it accepts scrapes."""
    logging.basicConfig(format="exporters: %(levelname)s %(message)s", level=logging.INFO)
    limit_malloc_arenas()
    tls, auth = None, None
    if options.web_config_file:
        tls, auth = load_web_config(options.web_config_file)
    collectors = build_collectors(options, platform, sources)
    guard = ScrapeGuard(
        collectors, options.collector_timeout_seconds, options.max_concurrent_scrapes
    )
    try:
        server = ExporterServer(options, guard, tls, auth)
    except OSError as exc:
        where = f"{options.listen_host}:{options.listen_port}"
        print(f"exporters: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return 1
    # launchd stops a job with SIGTERM: leave serve_forever and close the socket.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    names = ", ".join(c.name for c in collectors)
    tune_gc()
    print(f"exporters: node {options.node} listening on {server.url}", flush=True)
    log.info("collectors: %s", names)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config) if args.config else None
        options = resolve_options(args, config, args.config or "")
        return serve(options)
    except ConfigError as exc:
        print(f"exporters: {exc}", file=sys.stderr)
        return EXIT_USAGE
