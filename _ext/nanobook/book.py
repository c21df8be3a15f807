"""``book``: what an executed check can use besides the engine.

Every check's namespace holds ``book``. Its one job is to keep expensive objects
for the whole build, so that a model is loaded once, not once per block or per
page::

    llm = book.shared("tiny", lambda: LLM(enforce_eager=True))

The first call builds the object; later calls with the same key, on any page,
return the same object. The cache is emptied when a build starts. ``make
doctest`` gets the same ``book`` through ``doctest_global_setup``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Book:
    def __init__(self) -> None:
        self._shared: dict[str, Any] = {}
        self.created: list[str] = []  # keys in the order their objects were built

    def shared(self, key: str, factory: Callable[[], T]) -> T:
        """The object stored under ``key``, built by ``factory()`` the first time it is asked for."""
        # region shared-cache
        if not isinstance(key, str) or not key:
            raise ValueError(f"book.shared: key must be a non-empty string, got {key!r}")
        if key not in self._shared:
            self._shared[key] = factory()
            self.created.append(key)
        return self._shared[key]
        # endregion shared-cache

    def clear(self) -> None:
        self._shared.clear()
        self.created.clear()


book = Book()
