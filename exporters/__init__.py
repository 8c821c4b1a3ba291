"""The minicluster node exporter: node_exporter's metric names, correct on macOS.

Run with `python -m minicluster.exporter` (or `minicluster exporter`). Collectors live in
`minicluster.exporter.collectors`, one per file; `minicluster.exporter.scrape` runs them
with a time budget each, `minicluster.exporter.server` serves `/metrics`, `/sd`, `/` and
`/-/healthy`.
"""
