"""``python -m pumpguard``."""

from pumpguard.cli import main

raise SystemExit(main())
