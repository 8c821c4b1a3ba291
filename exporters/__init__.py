"""The minicluster node exporter: node_exporter's metric names, correct on macOS.

Run with `python -m exporters` (or `minicluster exporter`). Collectors live in
`exporters.collectors`, one per file; `exporters.scrape` runs them with a time budget each,
`exporters.server` serves `/metrics`, `/sd`, `/` and `/-/healthy`.
"""
