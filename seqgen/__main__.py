"""``python -m seqgen``: the command-line interface."""

from seqgen.cli import main

raise SystemExit(main())
