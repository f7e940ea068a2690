"""python -m benchmarks: see benchmarks/__init__.py and ``--help``."""

from .runner import main

raise SystemExit(main())
