"""`minicluster report <job_id>`: one self-contained HTML file for a finished job.

job      the job's record (runs/<job_id>.json) and the time window it ran in
panels   the PromQL behind each plot
charts   one panel's series as a matplotlib figure
figures  figure -> PNG bytes -> data: URI (shared with `minicluster bench`)
html     the page
build    all of it, from a job id to the file

Prometheus is read through minicluster.core.promapi.
"""
