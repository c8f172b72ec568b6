"""``python -m poisonscan``."""

from .cli import main

raise SystemExit(main())
