"""minicluster: distributed PyTorch on a few Mac Minis, observed with Prometheus and Grafana."""

__version__ = "0.1.0"
