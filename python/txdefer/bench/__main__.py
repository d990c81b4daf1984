"""
``python -m txdefer.bench``: the same as ``python -m txdefer bench``.
"""

import sys

from txdefer.bench.cli import main

sys.exit(main(prog="python -m txdefer.bench"))
