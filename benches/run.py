#!/usr/bin/env python3
"""
Run txdefer's benchmark suite from a checkout: ``python benches/run.py [--quick]``.

The same suite, options and output as ``python -m txdefer bench``; the workloads live
in the package (``txdefer.bench``) so that an installed wheel can run them too.  If
txdefer is not installed, the checkout's ``python/`` directory is used (the extension
must have been built in place, e.g. by ``maturin develop``).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import txdefer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from txdefer.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="benches/run.py"))
