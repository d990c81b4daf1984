"""
Garbage collections that happen while Deferreds are being created must never see a
half-built Deferred (a crash that PyO3's own instance-dict slot caused on CPython 3.11).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap


def test_collections_while_creating_many_deferreds_do_not_crash() -> None:
    # In a subprocess: the failure mode was a segmentation fault.
    code = textwrap.dedent(
        """
        import gc
        from txdefer import Deferred, DeferredList
        gc.set_threshold(1)
        ds = [Deferred() for _ in range(20000)]
        for d in ds[:100]:
            d.addCallback(lambda x: x)
        dl = DeferredList(ds[:100])
        gc.collect()
        print("survived", len(ds))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "survived 20000"


def test_instances_have_a_dict_and_weakrefs() -> None:
    import weakref

    from txdefer import Deferred

    d: Deferred[int] = Deferred()
    d.debug = True
    d.custom = "value"
    assert d.__dict__ == {"debug": True, "custom": "value"}
    ref = weakref.ref(d)
    del d
    gc.collect()
    assert ref() is None
