"""One object per process and slot, built on first use: a model loaded once per Dask worker, not once per scan.

Each slot holds a single entry: asking for another key in the same slot drops the
previous object, so a worker never keeps two models of one kind in memory, while
objects of different kinds (the WMH model in slot ``"model"``, the brain
extractor's network in its own slot) live side by side instead of evicting each
other on every scan.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_SLOTS: dict[str, dict[Hashable, Any]] = {}


def process_cached(key: Hashable, build: Callable[[], T], *, slot: str = "model") -> T:
    """The object cached under ``key`` in ``slot`` in this process, built by ``build()`` the first time.

    ``key`` must identify everything the object depends on (e.g. the model's hash
    and the device).

    Examples
    --------
    >>> calls = []
    >>> first = process_cached(("doc", 1), lambda: calls.append(1) or "model")
    >>> again = process_cached(("doc", 1), lambda: calls.append(1) or "model")
    >>> other = process_cached(("doc", 2), lambda: calls.append(2) or "extractor", slot="doc")
    >>> first, again, process_cached(("doc", 1), lambda: calls.append(1) or "model"), calls
    ('model', 'model', 'model', [1, 2])
    """
    entry = _SLOTS.setdefault(slot, {})
    if key not in entry:
        entry.clear()
        entry[key] = build()
    return entry[key]
