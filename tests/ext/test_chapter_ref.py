"""Chapter references: number and title from nanobook_chapters, a link to a written chapter,
"(in preparation)" for one not written yet, exact errors for anything else."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ext.conftest import latex, messages_of, page, warnings_of


@pytest.mark.sphinx("html", testroot="chapter-ref", freshenv=True)
def test_a_reference_prints_number_and_title_and_links_a_written_chapter(app):
    app.build()
    assert warnings_of(app) == ""
    assert ('<p>Blocks are explained in <a class="reference internal" href="01-memory.html">'
            '<span class="doc">Chapter 1, Memory</span></a>; their scheduling in '
            '<span class="nb-chapter-ref nb-in-preparation">Chapter 2, Later &amp; Sooner '
            '(in preparation)</span>.</p>') in page(app)
    assert ('<p>This is <a class="reference internal" href="#"><span class="doc">Chapter 1, '
            'Memory</span></a> itself.</p>') in page(app, "01-memory")


@pytest.mark.sphinx("html", testroot="chapter-ref", srcdir="chapter-ref-appears", freshenv=True)
def test_the_reference_becomes_a_link_when_the_chapter_is_written(app):
    app.build()
    assert "(in preparation)" in page(app)
    (Path(app.srcdir) / "02-later.md").write_text("# Later\n\nWritten now.\n")
    app.build()
    assert warnings_of(app) == ""
    assert ('their scheduling in <a class="reference internal" href="02-later.html"><span '
            'class="doc">Chapter 2, Later &amp; Sooner</span></a>.') in page(app)
    # An edit inside a chapter does not make the pages that refer to it be read again.
    index_read = (Path(app.doctreedir) / "index.doctree").stat().st_mtime_ns
    time.sleep(0.01)
    (Path(app.srcdir) / "02-later.md").write_text("# Later\n\nWritten, and edited.\n")
    app.build()
    assert (Path(app.doctreedir) / "index.doctree").stat().st_mtime_ns == index_read


@pytest.mark.sphinx("latex", testroot="chapter-ref", freshenv=True)
def test_latex_links_to_the_chapter(app):
    app.build()
    assert warnings_of(app) == ""
    tex = latex(app)
    assert (r"Blocks are explained in {\hyperref[\detokenize{01-memory::doc}]{\sphinxcrossref"
            r"{\DUrole{doc}{Chapter 1, Memory}}}}; their scheduling in \DUrole{nb-chapter-ref}"
            r"{\DUrole{nb-in-preparation}{Chapter 2, Later \& Sooner (in preparation)}}.") in tex


@pytest.mark.sphinx("html", testroot="chapter-ref-errors", freshenv=True)
def test_unknown_chapters_and_non_numbers_fail_the_build(app):
    app.build()
    assert [m.split("index.md:", 1)[1] for m in messages_of(app)] == [
        "3: ERROR: chapter reference in 'index': no chapter 12 in nanobook_chapters (conf.py); "
        "the chapters are 1 and 2 [nanobook.chapter_ref]",
        "5: ERROR: chapter reference in 'index': 'seven' is not a chapter number; write the "
        "number alone, as in {chapter}`7` (the chapters are 1 and 2) [nanobook.chapter_ref]",
        "7: ERROR: chapter reference in 'index': '01-memory' is not a chapter number; write the "
        "number alone, as in {chapter}`7` (the chapters are 1 and 2) [nanobook.chapter_ref]",
    ]
    assert app.statuscode == 1
