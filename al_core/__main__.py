"""Allow `python -m al_core ...` as an alias of the `al-explorer` command."""

from al_core.cli import main

raise SystemExit(main())
