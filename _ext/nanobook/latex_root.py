"""A separate root page for the PDF.

The web site opens on a landing page whose sections (who the book is for, the
chapter grid, how to run the engine) make sense on screen but would become
numbered chapters in a LaTeX book. So the PDF starts from its own page,
``nanobook_latex_root``, and every other builder leaves that page out.
"""

from __future__ import annotations

from sphinx.application import Sphinx


def exclude_latex_root(app: Sphinx) -> None:
    root = app.config.nanobook_latex_root
    if root and app.builder.format != "latex":
        app.config.exclude_patterns = [*app.config.exclude_patterns, f"{root}.md", f"{root}.rst"]


def setup(app: Sphinx) -> dict:
    app.add_config_value("nanobook_latex_root", "", "env", types=[str])
    app.connect("builder-inited", exclude_latex_root)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
