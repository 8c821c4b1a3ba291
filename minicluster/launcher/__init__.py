"""The distributed job launcher behind `minicluster run-job`, `stop`, `logs` and `status`.

plan     the torchrun command line of every node, from a Config and the CLI overrides
jobstore hosts the job's rendezvous store (master) and ranks' store (rank 0) on one address
remote   starting those commands on their nodes (ssh, or a local process for loopback nodes),
         stopping them by the PIDs it started, fetching per-rank log files
reap     stops one process tree by PID (run in-process, or on a node over ssh)
stream   merges the output of every node into one time-ordered log
clock    clock offsets between nodes and whether they reorder merged lines
progress the live progress bar fed by the ranks' `step` lines
summary  the end-of-job summary, printed and written to runs/<job_id>.json
job      runs one job from start to summary
prom     the few Prometheus HTTP API calls `status` needs
usercmd  a user's `python SCRIPT.py` / `python -m MODULE` command, checked against the project
files    which files of a project ship (git's ignore rules) and their hashes
ship     ships a project to every node, only what changed, and verifies each copy
receive  the node's side of shipping: its manifest, applying a delta, the job environment
stopjob  stops a job on every node by the PIDs its record holds
"""
