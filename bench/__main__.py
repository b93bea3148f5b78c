"""Run the benchmarks: ``python -m bench [--size default|small|tiny] [--output DIR]``."""

from .runner import main

raise SystemExit(main())
