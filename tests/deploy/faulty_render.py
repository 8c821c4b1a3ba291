"""`python -m minicluster.deploy` with a renderer that adds a rule file promtool rejects.

Used by the test that a rejected rule file stops the deploy before it reaches Prometheus.
Everything else is the real deploy.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import minicluster.deploy.stack  # noqa: E402
from minicluster.deploy.__main__ import main  # noqa: E402

BROKEN_RULES = b"""groups:
- name: broken
  rules:
  - alert: BrokenRule
    expr: rate(up[5m]
"""


def render_with_broken_rule(config):
    return {**real_bundle_files(config), "prometheus/rules/broken.yml": BROKEN_RULES}


real_bundle_files = minicluster.deploy.stack.bundle_files
minicluster.deploy.stack.bundle_files = render_with_broken_rule

if __name__ == "__main__":
    sys.exit(main(["deploy", *sys.argv[1:]]))
