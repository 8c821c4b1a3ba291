"""`minicluster bench`: world size 1 against 2, the all-reduce against the raw link.

tcp       raw TCP throughput on the link, measured in the same run
jobs      one trainer job under torchrun, summarised from its `summary` lines
results   the comparison (speedup, scaling efficiency, phases, bus bandwidth)
plots     the PNG plots (matplotlib, Agg)
markdown  report.md
run       the whole bench, from settings to runs/bench-<time>/
"""
