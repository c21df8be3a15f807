"""The book's Sphinx extension.

Each component lives in its own module with its own ``setup(app)``; this package
only wires them together, so ``extensions = ["nanobook"]`` in ``conf.py`` loads
all of them, and a test book can load a single component by its module name.

Components:

========================  ==================================================================
``engine_slice``          ``{engine-slice}``: part of an engine file, with annotations
``executed``              ``{check}``: code run at build time, output shown and asserted;
                          GPU records (``records``), the ``gpucheck`` builder, ``book.shared``
``quiz``                  ``{quiz}``, ``{question}``, ``{quiz-answer-key}``
``simulator``             ``{simulator}``: interactive widgets (``sims``) with a static form
``callouts``              ``{analogy}``, ``{why-it-matters}``, ``{misconceptions}``,
                          ``{takeaways}``
``values``                ``{value}``: numbers computed from the engine or a model config
                          (more in ``model_values``, ``record_files``)
``figure_plot``           ``{figure-plot}``: matplotlib figures drawn at build time
                          (``plot_style``: palette, themed SVG)
``record_table``          ``{record-table}``: measured records (``record_files``) as tables
``offline_math``          math rendered without loading anything from another host
``example``               ``{example}``: MyST source shown next to what it renders (the guide)
``reading_time``          reading time under chapter titles, ``{reading-time}``
``chapter_grid``          ``{chapter-grid}``, ``{chapter-toctree}``
``chapter_ref``           ``{chapter}`7```: "Chapter 7, Prefix Caching", linked
``latex_root``            the PDF's own root page and PDF-only pages (the answer key)
``warnings``              every warning's type and subtype; errors that fail the build
========================  ==================================================================
"""

from __future__ import annotations

from sphinx.application import Sphinx

from . import (
    callouts,
    chapter_grid,
    chapter_ref,
    engine_slice,
    example,
    executed,
    figure_plot,
    latex_root,
    offline_math,
    quiz,
    reading_time,
    record_table,
    simulator,
    values,
    warnings,
)

COMPONENTS = (warnings, reading_time, chapter_grid, chapter_ref, latex_root, engine_slice,
              executed, quiz, simulator, callouts, values, figure_plot, record_table,
              offline_math, example)


def setup(app: Sphinx) -> dict:
    for component in COMPONENTS:
        app.setup_extension(component.__name__)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
