"""`minicluster demo`: the stack and a training job on one machine, no Minis needed.

install   Prometheus/Alertmanager (apt or Homebrew) and Grafana (Homebrew) when missing
ports     the local profile's ports, moved where something else listens already
stack     render the local profile and start the services, detached
services  the PIDs it started (services.json), and stopping exactly those
watch     how soon Prometheus had the job's first sample
run       the whole demo
"""
