"""`python -m minicluster.deploy deploy|undeploy --config FILE ...`.

This is what `minicluster deploy` runs.

gevent's monkey-patching must happen before anything else imports socket, ssl or
threading: it lets pyinfra talk to every node at once (pip on the master while pip runs on
every worker). That is why the deploy runs in its own process.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from rich.console import Console  # noqa: E402

from minicluster.core.config import ConfigError, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minicluster.deploy")
    parser.add_argument("action", choices=["deploy", "undeploy"])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--purge", action="store_true")
    parser.add_argument("--wheel", type=Path, default=None)
    parser.add_argument("--node", default=None)
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.action == "deploy":
        from minicluster.deploy.run import deploy

        return deploy(config, args.dry_run, console, args.wheel)
    from minicluster.deploy.undeploy import undeploy

    return undeploy(config, args.purge, console, args.node)


if __name__ == "__main__":
    sys.exit(main())
