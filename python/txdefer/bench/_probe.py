"""
The child side of a memory measurement: ``python -m txdefer.bench._probe NAME IMPL N``
measures the memory workload NAME on IMPL (``twisted`` or ``txdefer``) with N objects,
in this fresh interpreter, and prints the result as JSON on stdout.
See :mod:`txdefer.bench.memory`.
"""

from __future__ import annotations

import json
import sys

from txdefer.bench.impls import by_key, ensure_distinct
from txdefer.bench.memory import measure_here
from txdefer.bench.registry import get
from txdefer.bench.spec import MemoryWorkload


def main(argv: list[str]) -> int:
    name, impl_key, items = argv
    ensure_distinct()
    workload = get(name)
    if not isinstance(workload, MemoryWorkload):
        raise SystemExit(f"{name} is not a memory workload")
    usage = measure_here(workload, by_key(impl_key).ns, int(items))
    json.dump(usage.as_dict(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
