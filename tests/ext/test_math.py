"""Math: MathJax from the book's own static files on pages with math, real LaTeX in the PDF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nanobook.assets import STATIC

from tests.ext.conftest import latex, messages_of, page


@pytest.mark.sphinx("html", testroot="math", freshenv=True)
def test_math_loads_the_vendored_mathjax_and_nothing_from_another_host(app):
    app.build()
    assert messages_of(app) == []
    html = page(app)
    assert '<span class="math notranslate nohighlight">\\(a^2 + b^2\\)</span>' in html
    assert "\\[\\frac{2b}{w}\\]" in html
    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
    assert "_static/mathjax/tex-svg-full.js" in [s.split("?")[0] for s in scripts]
    assert not [s for s in scripts if "//" in s]  # every script is the book's own
    assert 'window.MathJax = {"options": {"enableMenu": false' in html
    copied = Path(app.outdir) / "_static" / "mathjax" / "tex-svg-full.js"
    assert copied.read_bytes() == (STATIC / "mathjax" / "tex-svg-full.js").read_bytes()
    # A page without math loads no MathJax at all.
    plain = page(app, "plain")
    assert "tex-svg-full.js" not in plain and "window.MathJax" not in plain


@pytest.mark.sphinx("latex", testroot="math", freshenv=True)
def test_math_is_latex_in_the_pdf(app):
    app.build()
    tex = latex(app)
    assert r"Inline \(a^2 + b^2\) and on its own line:" in tex
    assert r"\begin{equation*}" in tex and r"\frac{2b}{w}" in tex


@pytest.mark.sphinx("html", testroot="math", freshenv=True,
                    confoverrides={"mathjax_path": "https://cdn.example.org/mathjax/tex-chtml.js"})
def test_mathjax_from_another_host_is_refused(app):
    app.build()
    assert [m.split("WARNING: ", 1)[1] for m in messages_of(app)] == [
        "mathjax_path 'https://cdn.example.org/mathjax/tex-chtml.js' loads MathJax from another "
        "host; the book loads nothing from other hosts: set mathjax_path = "
        "'mathjax/tex-svg-full.js' (the copy in source/_static/) [nanobook.math]"]


@pytest.mark.sphinx("html", testroot="math", freshenv=True,
                    confoverrides={"mathjax_path": "mathjax/tex-chtml.js"})
def test_a_mathjax_file_that_is_not_there_is_refused(app):
    app.build()
    assert [m.split("WARNING: ", 1)[1] for m in messages_of(app)] == [
        f"mathjax_path 'mathjax/tex-chtml.js' is not a file in html_static_path ({STATIC}) "
        "[nanobook.math]"]


def test_the_vendored_mathjax_is_the_one_its_notes_name():
    """The copy is MathJax 3.2.2's tex-svg-full.js, unchanged, with its licence beside it."""
    import hashlib

    folder = STATIC / "mathjax"
    digest = hashlib.sha256((folder / "tex-svg-full.js").read_bytes()).hexdigest()
    assert digest in (folder / "SOURCE.txt").read_text()
    assert "Apache License" in (folder / "LICENSE").read_text()



@pytest.mark.sphinx("html", testroot="callouts", freshenv=True,
                    confoverrides={"mathjax_path": "https://cdn.example.org/mathjax/tex-chtml.js"})
def test_a_book_without_math_is_not_checked(app):
    """No page has math, so no page loads MathJax: wherever mathjax_path points is moot."""
    app.build()
    assert "mathjax_path" not in app.warning.getvalue()
