"""Math on the web with nothing loaded from another host; real LaTeX in the PDF.

Authors write ``$...$`` and ``$$...$$`` (MyST's ``dollarmath``). The LaTeX builder prints
them as LaTeX. On the web, Sphinx's own MathJax support renders them, from a copy of
MathJax in the book's static files instead of a CDN: ``conf.py`` sets
``mathjax_path = "mathjax/tex-svg-full.js"``, MathJax 3.2.2's single-file build with every
TeX extension and SVG output (Apache-2.0, ``source/_static/mathjax/``).

Why that file: it is one self-contained script; the SVG output draws glyphs as paths, so no
font files are fetched and nothing else can be missing; SVG takes ``currentColor``, so
formulas follow the light/dark toggle; with every TeX extension built in, whatever LaTeX
accepts in the PDF, the web renders too (the autoloader never asks for another file).
MathJax's context menu is off (``mathjax3_config``): the options it offers would load
components from elsewhere. Sphinx adds the script only to pages that hold math.

This module checks the setting once a page with math is written: a ``mathjax_path`` that
is a web address, or a file that is not in ``html_static_path``, is a ``nanobook.math``
warning (an error under ``-W``). A book without math loads no MathJax, and is not checked.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

from .warnings import BookWarning

MATHJAX = "mathjax/tex-svg-full.js"


def is_remote(path: str) -> bool:
    return "://" in path or path.startswith("//")


def check_mathjax(app: Sphinx, pagename: str, templatename: str, context: dict,
                  doctree) -> None:
    if (app.builder.format != "html" or getattr(app.builder, "nanobook_math_checked", False)
            or not context.get("has_maths_elements", False)):  # what sphinx.ext.mathjax reads
        return
    app.builder.nanobook_math_checked = True
    path = app.config.mathjax_path
    if is_remote(path):
        BookWarning.MATH.warn(
            f"mathjax_path {path!r} loads MathJax from another host; the book loads nothing "
            f"from other hosts: set mathjax_path = {MATHJAX!r} (the copy in source/_static/)")
        return
    folders = [Path(app.confdir) / d for d in app.config.html_static_path]
    if not any((folder / path).is_file() for folder in folders):
        where = ", ".join(str(f) for f in folders) or "no folder (html_static_path is empty)"
        BookWarning.MATH.warn(f"mathjax_path {path!r} is not a file in html_static_path ({where})")


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("html-page-context", check_mathjax)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
