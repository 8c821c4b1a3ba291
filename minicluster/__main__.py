from minicluster.cli import main

raise SystemExit(main())
