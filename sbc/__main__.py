"""``python -m sbc``: the same as the ``sbc`` console script."""

from sbc.cli import main

raise SystemExit(main())
