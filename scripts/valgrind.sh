#!/usr/bin/env bash
# Run some of the core tests under valgrind's memcheck and fail on any memory error in
# txdefer's compiled extension (invalid read/write/free, use of uninitialised memory).
#
#   scripts/valgrind.sh                      # the default subset, txdefer only
#   scripts/valgrind.sh tests/test_gc.py -k 'subclass]'   # any pytest arguments
#
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3);
# the txdefer it imports is the one tested (set PYTHONPATH to test another build).
# PYTHONMALLOC=malloc makes every Python allocation visible to valgrind.
#
# CPython itself produces some reports under valgrind that are not ours: false
# "Invalid read" reports from glibc's vectorised string functions and "uninitialised
# value" reports inside the interpreter loop.  An error counts against txdefer when a
# frame of its backtrace is in txdefer's extension (the _core .so, a Rust source file or
# PyO3); an "Invalid write" or "Invalid free" anywhere counts too.  Everything else is
# counted and shown as noise.  The script exits 1 on any counted error, and with
# pytest's status if the tests failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

if [[ $# -eq 0 ]]; then
    set -- tests/test_deferred.py tests/test_chaining.py tests/test_reentrancy.py \
        tests/test_gc.py tests/test_cancel.py tests/test_recycle.py -k 'txdefer]'
fi

suppressions=()
for supp in /usr/lib/valgrind/python3.supp /usr/lib/valgrind/python.supp; do
    [[ -f $supp ]] && suppressions+=("--suppressions=$supp")
done

log=$(mktemp -t txdefer-valgrind.XXXXXX)
core=$("$PYTHON" -c 'import txdefer._core as c; print(c.__file__)') || exit 2
echo "valgrind: testing $core (log: $log)"

start=$SECONDS
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=no --errors-for-leak-kinds=none \
    --num-callers=60 --error-limit=no "${suppressions[@]}" --log-file="$log" \
    "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
status=$?
echo "valgrind: tests finished with status $status in $((SECONDS - start)) s"

"$PYTHON" - "$log" <<'PY'
import re
import sys
from collections import Counter

text = open(sys.argv[1]).read()
# An error is a block of "==pid==" lines starting with its kind and ending at a blank.
blocks = re.split(r"^==\d+== \n", text, flags=re.M)
KINDS = ("Invalid read", "Invalid write", "Invalid free", "Mismatched free",
         "Conditional jump or move depends on uninitialised",
         "Use of uninitialised value", "Syscall param", "Source and destination overlap")
ours_frame = re.compile(r"(_core\.|\b_core::|\bpyo3|\.rs:\d+)")
ours, noise = Counter(), Counter()
examples = []
for block in blocks:
    lines = [re.sub(r"^==\d+== ", "", line) for line in block.strip().splitlines()]
    if not lines:
        continue
    kind = next((k for k in KINDS if lines[0].startswith(k)), None)
    if kind is None:
        continue
    frames = [line for line in lines[1:] if line.lstrip().startswith(("at ", "by "))]
    if any(ours_frame.search(f) for f in frames) or kind in ("Invalid write", "Invalid free"):
        ours[kind] += 1
        if len(examples) < 3:
            examples.append("\n".join(lines[:25]))
    else:
        noise[kind] += 1
summary = re.search(r"ERROR SUMMARY: .*", text)
print("valgrind:", summary.group(0) if summary else "no error summary (crashed?)")
print("valgrind: errors in txdefer:", sum(ours.values()), dict(ours))
print("valgrind: CPython noise (not counted):", sum(noise.values()), dict(noise))
for example in examples:
    print(example, end="\n\n")
sys.exit(1 if ours or not summary else 0)
PY
parsed=$?
if [[ $status -ne 0 ]]; then exit "$status"; fi
exit "$parsed"
