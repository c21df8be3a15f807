"""The book's Sphinx extension.

Each component lives in its own module with its own ``setup(app)``; this package
only wires them together, so ``extensions = ["nanobook"]`` in ``conf.py`` loads
all of them, and a test book can load a single component by its module name.
"""

from __future__ import annotations

from sphinx.application import Sphinx

from . import chapter_grid, latex_root, reading_time

COMPONENTS = (reading_time, chapter_grid, latex_root)


def setup(app: Sphinx) -> dict:
    for component in COMPONENTS:
        app.setup_extension(component.__name__)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
