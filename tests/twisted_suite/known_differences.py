"""
The one list of Twisted tests that cannot pass with txdefer installed, with the reason.

Keys are trial test ids (``twisted.test.test_defer.Class.test_name``).  A test listed
here must fail with txdefer (the suite checks that, so a fixed difference cannot stay
listed); every other test must pass.  The README's compatibility table shows this list.
"""

KNOWN_DIFFERENCES: dict[str, str] = {}
