"""`python -m minicluster.trainer`: config, build, train, close (run it under torchrun)."""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.errors import record

from minicluster.core.config import ConfigError
from minicluster.trainer.settings import settings_from_argv
from minicluster.trainer.trainer import Trainer

EXIT_USAGE = 2


@record  # a failing rank's traceback lands in torchrun's error summary
def main(argv: list[str] | None = None) -> int:
    try:
        run = settings_from_argv(argv)
        trainer = Trainer(run)
    except ConfigError as exc:
        print(f"trainer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        trainer.train()
    finally:
        trainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
