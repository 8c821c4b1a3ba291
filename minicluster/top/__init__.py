"""`minicluster top`: a live terminal view of the cluster over Prometheus's HTTP API.

minicluster.core.promapi asks Prometheus, queries.py turns its answers into plain
dataclasses, view.py draws them to fit a terminal, app.py runs the refresh loop and reads keys.
"""
