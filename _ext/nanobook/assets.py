"""The web side's shared assets: ``_static/nanobook/nanobook.css`` on every page.

The style sheet covers all components (slices, checks, quizzes, callouts,
simulators' frames) and uses the theme's CSS variables, so light and dark modes
both work. Scripts are added per page by the component that needs them, so a
page without a quiz or a simulator loads none of their code.

The files live in the book's ``source/_static/`` (``html_static_path``); a test
book points ``html_static_path`` there too.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

STATIC = Path(__file__).resolve().parents[2] / "source" / "_static"


def setup(app: Sphinx) -> dict:
    app.add_css_file("nanobook/nanobook.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
