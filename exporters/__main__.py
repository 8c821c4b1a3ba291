"""`python -m minicluster.exporter [--config FILE] [--node NAME] [--listen HOST:PORT]`."""

from minicluster.exporter.cli import main

raise SystemExit(main())
