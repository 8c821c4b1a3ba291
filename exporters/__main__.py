"""`python -m exporters [--config FILE] [--node NAME] [--listen HOST:PORT]`."""

from exporters.cli import main

raise SystemExit(main())
