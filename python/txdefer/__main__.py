"""
``python -m txdefer COMMAND``.  Commands:

* ``bench``: time txdefer against Twisted (``python -m txdefer bench --help``).
"""

from __future__ import annotations

import sys

USAGE = "usage: python -m txdefer bench [options]   (python -m txdefer bench --help)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() if __doc__ else USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from txdefer.bench.cli import main as bench

        return bench(rest, prog="python -m txdefer bench")
    print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
