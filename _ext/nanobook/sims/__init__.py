"""The simulators the ``simulator`` directive can mount, one module per widget.

A widget is described by a ``Widget``: its name, its parameters (with types,
defaults and limits, checked at build time), the ES module under ``_static/``
that draws it, and a function producing its static form for the PDF.

A widget that models engine behaviour also names its *logic* module (plain
JavaScript, no DOM) and provides, in Python, ``scenarios(seed, count)`` (random
inputs) and ``replay(scenario)`` (the same inputs run through the real engine,
returning the state after every step). ``tests/ext/test_simulator_logic.py`` runs
every such widget's logic in Node and its ``replay`` in Python on the same
scenarios and asserts identical states, step by step. A new simulator adds its
module here and nothing to the harness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from docutils import nodes


@dataclass(frozen=True)
class Param:
    type: type  # int, float, str or bool
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def convert(self, name: str, raw: str) -> Any:
        """The value of ``raw`` for this parameter, or ValueError naming what is allowed."""
        text = raw.strip()
        if self.type is bool:
            if text.lower() in ("true", "yes", "on", "1", ""):
                return True
            if text.lower() in ("false", "no", "off", "0"):
                return False
            raise ValueError(f"{name}: expected true or false, got {raw!r}")
        try:
            value = self.type(text)
        except ValueError:
            raise ValueError(f"{name}: expected {self.type.__name__}, got {raw!r}") from None
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{name}: {value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{name}: {value} is above the maximum {self.maximum}")
        return value


@dataclass(frozen=True)
class Widget:
    name: str
    title: str
    view: str  # ES module under _static/ that exports mount(element, params)
    params: dict[str, Param]
    # params (with defaults filled in) -> the data the page hands to the view (JSON-able)
    data: Callable[[dict], dict] = lambda params: params
    # (params, data) -> nodes of the static form (PDF, and the HTML's "without JavaScript" part)
    static_form: Callable[[dict, dict], list[nodes.Node]] | None = None
    logic: str = ""  # JS module (path under _static/) with the engine-modelling logic, if any
    scenarios: Callable[[int, int], list[dict]] | None = None
    replay: Callable[[dict], list[dict]] | None = None
    css: tuple[str, ...] = field(default_factory=tuple)


def registry() -> dict[str, Widget]:
    from . import paged_allocator

    widgets = [paged_allocator.WIDGET]
    return {w.name: w for w in widgets}
