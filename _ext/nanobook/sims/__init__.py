"""The simulators the ``simulator`` directive can mount, one module per widget.

A widget is described by a ``Widget``: its name, its parameters (with types,
defaults and limits, checked at build time), the ES module under ``_static/``
that draws it, and a function producing its static form for the PDF.

A widget that models engine behaviour also names its *logic* module (plain
JavaScript, no DOM) and provides, in Python, ``scenarios(seed, count)`` (random
inputs) and ``replay(scenario)`` (the same inputs run through the real engine,
returning the state after every step). ``tests/ext/test_simulator_logic.py`` runs
every such widget's logic in Node and its ``replay`` in Python on the same
scenarios and asserts identical states, step by step; ``coverage(states)`` names
the cases those scenarios must reach for the comparison to mean something. A new
simulator adds its module here and nothing to the harness.

A widget whose page data comes from running the engine names the engine modules
it runs (``engine_modules``) and any other files its result depends on
(``engine_files``, globs under the engine root, such as model weights): the page
is read again when one of them changes, as for executed checks.

A widget whose view fetches a file at run time (the tokenizer's ``tokenizer.json``) names it
in ``static_files``: the path under ``_static/`` it is served at, and the file it is copied
from, which every HTML build copies, so the page and the engine read the same file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docutils import nodes


class ParamError(ValueError):
    """A parameter, or a combination of them, that the widget cannot take; the message is
    shown to the author as it is, so it names the option and what is allowed."""


@dataclass(frozen=True)
class Param:
    """One option of a widget.

    ``type`` is int, float, str or bool. With ``many``, the option holds several values:
    whole or decimal numbers separated by commas (``12, 30, 7``), or, for str, a JSON list of
    strings (``["ROMEO:", "JULIET:"]``), since texts may hold commas. ``minimum`` and
    ``maximum`` bound each number; ``max_items`` bounds how many values there are.
    """

    type: type  # int, float, str or bool
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    many: bool = False
    max_items: int = 64

    def shown_default(self) -> str:
        """The default as an author would write it in the option."""
        if self.many:
            if not self.default:
                return "none"
            if self.type is str:
                return json.dumps(list(self.default))
            return ", ".join(map(str, self.default))
        if self.type is bool:
            return "on" if self.default else "off"
        return str(self.default)

    def convert(self, name: str, raw: str) -> Any:
        """The value of ``raw`` for this parameter, or ParamError naming what is allowed."""
        text = raw.strip()
        if self.many:
            return self._convert_many(name, text)
        if self.type is bool:
            if text.lower() in ("true", "yes", "on", "1", ""):
                return True
            if text.lower() in ("false", "no", "off", "0"):
                return False
            raise ParamError(f":{name}: expected true or false, got {raw!r}")
        return self._one(name, text, raw)

    def _one(self, name: str, text: str, raw: str) -> Any:
        if self.type is str:
            return text
        try:
            value = self.type(text)
        except ValueError:
            raise ParamError(f":{name}: expected {self.type.__name__}, got {raw!r}") from None
        if self.minimum is not None and value < self.minimum:
            raise ParamError(f":{name}: {value} is below the minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ParamError(f":{name}: {value} is above the maximum {self.maximum}")
        return value

    def _convert_many(self, name: str, text: str) -> tuple:
        if self.type is str:
            try:
                values = json.loads(text)
            except ValueError:
                values = None
            if not (isinstance(values, list) and values
                    and all(isinstance(v, str) and v for v in values)):
                raise ParamError(f":{name}: expected a JSON list of non-empty strings, such as "
                                 f'["ROMEO:", "JULIET:"], got {text!r}')
        else:
            values = [part.strip() for part in text.split(",")]
            if not text or not all(values):
                raise ParamError(f":{name}: expected {self.type.__name__} values separated by "
                                 f"commas, such as 12, 30, 7, got {text!r}")
            values = [self._one(name, part, part) for part in values]
        if len(values) > self.max_items:
            raise ParamError(f":{name}: {len(values)} values; at most {self.max_items} are allowed")
        return tuple(values)


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
    # states of every scenario -> {case: reached?}; the logic test requires every case
    coverage: Callable[[list[list[dict]]], dict[str, bool]] | None = None
    css: tuple[str, ...] = field(default_factory=tuple)  # style sheets under _static/
    engine_modules: tuple[str, ...] = ()  # engine modules data() runs (their imports follow)
    engine_files: tuple[str, ...] = ()  # other files data() reads, globs under the engine root
    # () -> {path under _static/: the file to copy there}, for files the view fetches
    static_files: Callable[[], dict[str, Path]] | None = None


def registry() -> dict[str, Widget]:
    from . import (
        batching_timeline,
        block_table_walk,
        kv_memory,
        next_token,
        paged_allocator,
        prefix_cache,
        scheduler_replay,
        scheduler_stepper,
        tokenizer_playground,
    )

    widgets = [paged_allocator.WIDGET, scheduler_replay.WIDGET, scheduler_stepper.WIDGET,
               batching_timeline.WIDGET, tokenizer_playground.WIDGET, next_token.WIDGET,
               kv_memory.WIDGET, prefix_cache.WIDGET, block_table_walk.WIDGET]
    return {w.name: w for w in widgets}
