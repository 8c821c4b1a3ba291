"""`minicluster deploy`: the stack onto the Minis with pyinfra, driven from config.yaml.

    deploy.inventory   pyinfra Inventory/State from the config's nodes (no second host list)
    deploy.wheel       the project wheel, built once on the control machine
    deploy.facts       what the deploy reads on a node (launchd jobs, file digests)
    deploy.stack       the master's rendered tree (`minicluster render`) and its checks
    deploy.services    launchd: bootstrap, or kickstart -k / reload only what changed
    deploy.plan        the operations for one node (every node; the master's extras)
    deploy.verify      after the run: exporters answer from the master, Prometheus
                       reloaded and its rules loaded, Alertmanager ready, Grafana dashboards
    deploy.probe       stdlib-only probes that run on a node (also used by `doctor`)
    deploy.run         the driver: connect, plan, dry run or run, verify, report
    deploy.undeploy    boot out and remove what deploy installed

Run as `python -m minicluster.deploy` (the `minicluster deploy` command does that):
pyinfra runs hosts in parallel on gevent, whose monkey-patching must come before anything
else is imported.
See docs/deploy.md.
"""
