"""What to change on this cluster, read from the measured sweep and link.

Rules, each from a figure in the same report:
- the link: raw TCP below ~2 Gbit/s is Ethernet-class (1 GbE: 125 MB/s); there a
  gradient all-reduce of a few MB per step is link-bound, and halving its bytes (fp16 or
  bf16 compression) halves its time; PowerSGD sends far fewer bytes still.
- the bucket: the smallest size whose bus bandwidth reaches 80% of the sweep's best is
  where per-call latency stops mattering; DDP's buckets (bucket_cap_mb, 25 MB by default)
  should be at least that big.
- the interface: large all-reduces far below the link's raw TCP mean gloo is not using
  that link (GLOO_SOCKET_IFNAME/interface) or the CPU, not the wire, is the limit.
"""

from __future__ import annotations

MB = 1 << 20
SLOW_LINK = 250e6  # bytes/s: below 2 Gbit/s
LARGE = 64 * MB
GOOD_SHARE = 0.8


def knee(rows: list[dict], share: float = GOOD_SHARE) -> int | None:
    """The smallest size whose busbw reaches `share` of the best busbw in the sweep."""
    best = max((r["busbw"] for r in rows), default=0.0)
    for r in sorted(rows, key=lambda r: r["size"]):
        if best and r["busbw"] >= share * best:
            return r["size"]
    return None


def large_share(rows: list[dict], tcp_bytes_per_second: float) -> float | None:
    """Best busbw at 64 MB and above, as a share of raw TCP."""
    large = [r["busbw"] for r in rows if r["size"] >= LARGE]
    if not large or not tcp_bytes_per_second:
        return None
    return max(large) / tcp_bytes_per_second


def advise(rows: list[dict], tcp_bytes_per_second: float, world_size: int) -> list[str]:
    advice = []
    share = large_share(rows, tcp_bytes_per_second)
    gbit = tcp_bytes_per_second * 8 / 1e9
    if world_size < 2:
        return ["One rank only: nothing crossed the link; configure two nodes to measure it."]
    if tcp_bytes_per_second and tcp_bytes_per_second < SLOW_LINK:
        advice.append(
            f"The link carries {gbit:.2f} Gbit/s: gradient traffic is link-bound. Set "
            "`trainer.grad_compression: fp16` (or bf16) to send half the bytes; try "
            "`powersgd` for models of several MB of gradients, and compare the final loss. "
            "A 10 GbE or Thunderbolt link between the Minis lifts this limit."
        )
    else:
        advice.append(
            f"The link carries {gbit:.2f} Gbit/s: keep `trainer.grad_compression: none` "
            "unless a step's comm phase dominates; compression costs compute on this link."
        )
    size = knee(rows)
    if size is not None:
        cap = max(1, -(-size // MB))
        if size > 25 * MB:
            advice.append(
                f"Bus bandwidth reaches 80% of its best from {size // MB} MB per call: set "
                f"`trainer.bucket_cap_mb: {cap}` or more (DDP's default is 25)."
            )
        else:
            advice.append(
                f"Bus bandwidth reaches 80% of its best from {_size(size)} per call: DDP's "
                "default 25 MB buckets are large enough; smaller models gain from fewer, "
                "larger buckets only when a step has several."
            )
    if share is not None:
        if share < 0.5:
            advice.append(
                f"Large all-reduces reach only {share:.0%} of raw TCP: check that each "
                "node's `interface` is the link gloo should use (GLOO_SOCKET_IFNAME) and "
                "that the CPU is not saturated during the sweep."
            )
        else:
            advice.append(
                f"Large all-reduces reach {share:.0%} of raw TCP: gloo uses the link well; "
                "only a faster link or fewer bytes make communication faster."
            )
    return advice


def _size(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // 1024} KB"


def advise_training(results: dict) -> list[str]:
    """From world size 1 against 2: the comm share of a step, the link, the bucket."""
    scaled = results["runs"][-1]
    fraction = scaled.get("comm_fraction") or 0.0
    link = results["tcp"]["bytes_per_second"] or 0.0
    grad = results["model"].get("grad_bytes") or 0
    calls = scaled.get("allreduce_calls") or 0
    steps = scaled.get("steps") or 1
    tips = []
    if fraction >= 0.3:
        tips.append(
            f"Communication is {fraction:.0%} of a step: set `trainer.grad_compression: "
            "fp16` (half the bytes) or try `powersgd`, and compare the final loss."
        )
    else:
        tips.append(
            f"Communication is {fraction:.0%} of a step: compute dominates, keep "
            "`trainer.grad_compression: none`; more ranks scale well here."
        )
    if link and link < SLOW_LINK and grad:
        tips.append(
            f"At {link * 8 / 1e9:.2f} Gbit/s the {grad / MB:.1f} MB of gradients take at "
            f"least {grad / link * 1e3:.0f} ms per step on the wire; a faster interface "
            "(10 GbE, Thunderbolt) or fp16 compression shortens that."
        )
    if calls > steps and grad < 25 * MB:
        tips.append(
            f"{calls / steps:.0f} all-reduce calls per step for {grad / MB:.1f} MB: raise "
            "`trainer.bucket_cap_mb` so that one call carries a step's gradients."
        )
    tips.append(
        "`minicluster bench --allreduce` measures the all-reduce from 4 KB to 256 MB "
        "against this link, for the bucket size."
    )
    return tips
