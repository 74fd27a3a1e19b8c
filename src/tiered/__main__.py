"""`python -m tiered`: the same as the `tiered` command."""

from tiered._cli import main

raise SystemExit(main())
