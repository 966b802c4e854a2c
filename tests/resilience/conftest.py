"""The resilience suite (issue 8): faults injected into a real stack. Everything here is marked
`resilience` (run it alone with `-m resilience`); the largest matrices and the soak are also marked
`resilience_long` and run only when asked for by name: `-m resilience_long` (outside .ci/run, see
RESILIENCE.md). Stack helpers live in tests/resilience/stack.py."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "resilience_long" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long resilience run: select it with -m resilience_long")
    for item in items:
        if item.get_closest_marker("resilience_long") is not None:
            item.add_marker(skip)
