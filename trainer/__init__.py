"""The torchrun DDP trainer: a small, observable training job for the Minis.

Run it under torchrun (`torchrun ... -m minicluster.trainer --config config.yaml --node <name>`);
`python -m minicluster.trainer` alone runs a single-process job. Every rank serves Prometheus
metrics, writes its own log file and registers itself for the exporter's `/sd`, all through
minicluster.track, as a user's own script does.
"""
