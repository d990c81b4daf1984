"""
Fixtures: every behaviour test takes ``impl`` and runs three times, against Twisted's
own ``Deferred`` (the reference), ``txdefer.Deferred`` and a Python subclass of it.
See ``tests/impls.py``.
"""

from __future__ import annotations

import pytest

from tests.impls import ALL_IMPLS, OURS, TWISTED, Impl


@pytest.fixture(params=ALL_IMPLS, ids=lambda impl: impl.name)
def impl(request: pytest.FixtureRequest) -> Impl:
    """
    The implementation under test: Twisted's, txdefer's, or txdefer's subclassed.
    """
    return request.param


@pytest.fixture(params=OURS, ids=lambda impl: impl.name)
def ours(request: pytest.FixtureRequest) -> Impl:
    """
    txdefer's implementations only (for txdefer-specific behaviour, e.g. interop).
    """
    return request.param


@pytest.fixture
def twisted() -> Impl:
    """
    The reference implementation, to compare against.
    """
    return TWISTED


@pytest.fixture(autouse=True)
def _restore_debugging() -> object:
    """
    Tests may switch Deferred debugging on; always switch it back off.
    """
    yield
    for each in ALL_IMPLS:
        each.setDebugging(False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the known differences (tests/known_differences.py) as strict xfails."""
    from tests.known_differences import OWN_SUITE

    for item in items:
        reason = OWN_SUITE.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
