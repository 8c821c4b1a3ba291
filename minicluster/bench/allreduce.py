"""`minicluster bench --allreduce`: the sweep on every configured node, the raw link in
the same run, then results.json, report.md and plots.

The nodes come from the config (or the local profile: two nodes on this machine); the
sweep runs under torchrun on all of them (minicluster.bench.nodes), ranks pinned one per
core. Raw TCP goes from the first node to the second over the same addresses, so the
report can say what share of the link the all-reduce reaches.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from matplotlib.figure import Figure

from minicluster.bench import advice, sweep
from minicluster.bench.nodes import NodeOutput, run_everywhere, tcp_between
from minicluster.bench.results import host_facts
from minicluster.core.config import Config
from minicluster.core.logformat import now_iso
from minicluster.launcher.remote import SshSettings
from minicluster.report.figures import human_bytes, new_figure, save_png

PIN_LINE = re.compile(r"rank (\d+) pinned (?:cpu=(\d+)|none)")


def run_sweep(
    config: Config,
    sizes: list[int],
    ssh: SshSettings | None = None,
    warmup: int = 2,
    iters: int | None = None,
    timeout: float = 900.0,
) -> tuple[list[dict], dict[str, str]]:
    module = ["minicluster.bench.sweep", "--sizes", ",".join(map(str, sizes))]
    module += ["--warmup", str(warmup)] + (["--iters", str(iters)] if iters else [])
    outputs = run_everywhere(config, module, ssh, timeout=timeout)
    rows = [asdict(r) for out in outputs for r in sweep.parse_rows(out.lines)]
    if len(rows) != len(sizes):
        raise RuntimeError(f"the sweep reported {len(rows)} of {len(sizes)} sizes")
    return rows, pinning(outputs)


def pinning(outputs: list[NodeOutput]) -> dict[str, str]:
    """'node/rank N' -> the core it ran on ('cpu 3'), or 'unpinned' (macOS)."""
    found = {}
    for out in outputs:
        for line in out.lines:
            match = PIN_LINE.search(line)
            if match:
                where = f"cpu {match[2]}" if match[2] else "unpinned"
                found[f"{out.name}/rank {match[1]}"] = where
    return found


def measure(
    config: Config,
    sizes: list[int],
    ssh: SshSettings | None = None,
    tcp_seconds: float = 2.0,
    warmup: int = 2,
    iters: int | None = None,
) -> dict:
    started_at = now_iso()
    link = tcp_between(config, tcp_seconds, ssh)
    rows, pinned = run_sweep(config, sizes, ssh, warmup, iters)
    for r in rows:
        r["busbw_tcp_share"] = r["busbw"] / link.bytes_per_second if link.bytes_per_second else None
    world = rows[0]["world_size"]
    return {
        "started_at": started_at,
        "machine": host_facts(),
        "nodes": [
            {"name": n.name, "address": n.address, "interface": n.interface} for n in config.nodes
        ],
        "world_size": world,
        "pinned": pinned,
        "rows": rows,
        "tcp": {
            "from": config.nodes[0].name,
            "to": config.nodes[-1 if len(config.nodes) > 1 else 0].name,
            "address": link.address,
            "bytes": link.bytes,
            "seconds": link.seconds,
            "bytes_per_second": link.bytes_per_second,
        },
        "large_share": advice.large_share(rows, link.bytes_per_second),
        "advice": advice.advise(rows, link.bytes_per_second, world),
    }


def _size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def render_markdown(results: dict, plot: Path) -> str:
    tcp = results["tcp"]
    nodes = ", ".join(f"{n['name']} ({n['address']}, {n['interface']})" for n in results["nodes"])
    lines = [
        f"# minicluster all-reduce sweep, {results['started_at']}",
        "",
        f"gloo all-reduce of float32 buffers (sum) across {results['world_size']} ranks on "
        f"{nodes}, one rank per core. Time per call is the slowest rank's mean over the "
        "timed calls; algbw = size / time, busbw = algbw x 2(n-1)/n (nccl-tests' "
        "`all_reduce_perf`).",
        "",
        "Ranks: "
        + (", ".join(f"{k} on {v}" for k, v in sorted(results.get("pinned", {}).items())) or "n/a")
        + ".",
        "",
        f"Raw TCP from {tcp['from']} to {tcp['address']} in the same run: "
        f"{human_bytes(tcp['bytes_per_second'], per_second=True)} "
        f"({tcp['bytes_per_second'] * 8 / 1e9:.2f} Gbit/s, one stream, "
        f"{human_bytes(tcp['bytes'])} in {tcp['seconds']:.2f} s).",
        "",
        "| size | count | calls | time | algbw | busbw | busbw / TCP |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        share = r.get("busbw_tcp_share")
        lines.append(
            f"| {_size(r['size'])} | {r['count']} | {r['calls']} | "
            f"{r['seconds'] * 1e3:.3f} ms | {human_bytes(r['algbw'], per_second=True)} | "
            f"{human_bytes(r['busbw'], per_second=True)} | "
            f"{'n/a' if share is None else format(share, '.1%')} |"
        )
    large = results.get("large_share")
    lines += [
        "",
        "Best bus bandwidth at 64 MB and above: "
        + ("n/a" if large is None else f"{large:.1%} of raw TCP")
        + ".",
        "",
        f"![all-reduce sweep]({plot.name})",
        "",
        "## What to change",
        "",
        *[f"- {item}" for item in results["advice"]],
        "",
    ]
    return "\n".join(lines)


def sweep_figure(results: dict) -> Figure:
    rows = results["rows"]
    sizes = [r["size"] for r in rows]
    figure = new_figure(7.0, 3.6)
    ax = figure.add_subplot()
    ax.plot(sizes, [r["busbw"] / 1e6 for r in rows], "o-", color="#d62728", label="busbw")
    ax.plot(sizes, [r["algbw"] / 1e6 for r in rows], "o--", color="#ff9896", label="algbw")
    link = results["tcp"]["bytes_per_second"] / 1e6
    ax.axhline(link, color="#7f7f7f", linestyle=":", label=f"raw TCP {link:.0f} MB/s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [_size(s) for s in sizes], rotation=45, fontsize=8)
    ax.set_ylabel("MB/s")
    ax.set_title(f"gloo all-reduce, {results['world_size']} ranks, against the raw link")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(alpha=0.3)
    return figure


def write_report(results: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "allreduce.json").write_text(json.dumps(results, indent=2) + "\n")
    plot = save_png(sweep_figure(results), out_dir / "allreduce.png")
    report = out_dir / "allreduce.md"
    report.write_text(render_markdown(results, plot))
    return report


def table_lines(results: dict) -> list[str]:
    """The sweep as nccl-tests prints it, for the terminal."""
    head = ("size", "count", "calls", "time", "algbw", "busbw")
    lines = ["{:>10} {:>10} {:>6} {:>12} {:>12} {:>12}".format(*head)]
    for r in results["rows"]:
        lines.append(
            f"{_size(r['size']):>10} {r['count']:>10} {r['calls']:>6} "
            f"{r['seconds'] * 1e3:>9.3f} ms {r['algbw'] / 1e6:>7.1f} MB/s "
            f"{r['busbw'] / 1e6:>7.1f} MB/s"
        )
    tcp, large = results["tcp"], results.get("large_share")
    lines.append(
        f"raw TCP {tcp['bytes_per_second'] / 1e6:.1f} MB/s to {tcp['address']}; "
        + (f"busbw at 64 MB+ is {large:.1%} of it" if large is not None else "no size >= 64 MB")
    )
    return lines
