"""Engine slices: selection by object and by region, annotations, links, errors, rebuilds."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.ext.conftest import assert_snapshot, fragment, latex, page, warnings_of


@pytest.mark.sphinx("html", testroot="slice", freshenv=True)
def test_html_slices(app):
    app.build()
    assert warnings_of(app) == ""
    html = page(app)
    take = fragment(html, "figure", "nb-slice", 0)
    assert_snapshot("slice-object.html", take)
    # The real line numbers of the file, a marker on each annotated line, the notes numbered.
    assert re.findall(r'data-line="(\d+)"', take)[:4] == ["13", "14", "15", "16"]
    assert re.findall(r'<span class="nb-line nb-annotated" data-line="(\d+)" data-note="(\d)"',
                      take) == [("14", "1"), ("16", "2")]
    assert 'href="code/toyengine/pool.py.html#L13"' in take and "lines 13&#8211;16" in take
    assert "<em>queue</em>" in take  # notes are MyST
    region = fragment(html, "figure", "nb-slice", 1)
    assert_snapshot("slice-region.html", region)
    assert "region take-many" in region and "lines 25&#8211;27" in region
    assert "# region" not in region  # marker lines are not part of the slice
    by_path = fragment(html, "figure", "nb-slice", 2)
    assert "lines 23&#8211;29" in by_path and 'data-note="1"' in by_path
    whole = fragment(html, "figure", "nb-slice", 3)
    assert "toyengine/__init__.py" in whole and "nb-has-notes" not in whole
    # Only pages with slices load the script.
    assert 'src="_static/nanobook/slice.js' in html


@pytest.mark.sphinx("html", testroot="slice", freshenv=True)
def test_the_whole_file_page_has_an_anchor_per_line(app):
    app.build()
    source = (Path(app.outdir) / "code" / "toyengine" / "pool.py.html").read_text()
    lines = (Path(app.srcdir) / "toyengine" / "pool.py").read_text().splitlines()
    assert re.findall(r'<span class="nb-src-line" id="L(\d+)">', source) == [
        str(i) for i in range(1, len(lines) + 1)]
    assert "toyengine/pool.py" in source


@pytest.mark.sphinx("latex", testroot="slice", freshenv=True)
def test_latex_slices(app):
    app.build()
    assert warnings_of(app) == ""
    tex = latex(app)
    first = tex[tex.index(r"\begin{nbslice}"): tex.index(r"\end{nbslice}") + len(r"\end{nbslice}")]
    assert_snapshot("slice-object.tex", first)
    assert r"\begin{nbslice}{toyengine/pool.py}{13}{16}{Taking a block}" in first
    assert "firstnumber=13" in first
    marked = [line for line in first.splitlines() if r"\nbmark{" in line]
    assert len(marked) == 2 and "popleft" in marked[0] and r"\nbmark{1}" in marked[0]
    assert r"\nbmark{2}" in marked[1] and "return" in marked[1]
    assert r"\begin{enumerate}" in first  # the notes, numbered like the markers


@pytest.mark.sphinx("html", testroot="slice-errors", freshenv=True)
def test_every_error_names_the_page_the_slice_and_the_pattern(app):
    app.build()
    warnings = warnings_of(app)
    expected = {
        "missing-file": ("toyengine.nothing:Pool", "no engine module 'toyengine.nothing'",
                         "slice_file"),
        "missing-object": ("toyengine.pool:Pool.steal", "no class or function 'steal' in Pool",
                           "slice_object"),
        "missing-region": ("toyengine.pool#take-all", "expected one '# region take-all' line",
                           "slice_marker"),
        "no-match": ("toyengine.pool:Pool.take", "pattern 'self.free.pop()' matches no line",
                     "slice_pattern"),
        "ambiguous": ("toyengine.pool:Pool", "pattern 'self.used' matches 3 lines", "slice_ambiguous"),
        "no-note": ("toyengine.pool:Pool.take", "pattern 'return block' has no note", "slice_syntax"),
    }
    for doc, (target, message, subtype) in expected.items():
        line = next((w for w in warnings.splitlines() if f"{doc}.md" in w), "")
        assert "ERROR" in line, (doc, warnings)
        assert f"engine-slice '{target}' in '{doc}'" in line
        assert message in line, (message, line)
        assert line.endswith(f"[nanobook.{subtype}]")
    assert app.statuscode == 1  # errors fail the build even without -W


@pytest.mark.sphinx("html", testroot="slice", srcdir="slice-rebuild", freshenv=True)
def test_the_page_is_read_again_when_the_engine_file_changes(app):
    app.build()
    engine = Path(app.srcdir) / "toyengine" / "pool.py"
    text = engine.read_text()
    time.sleep(0.01)
    engine.write_text(text.replace("        block = self.free.popleft()\n",
                                   "        # the oldest one\n        block = self.free.popleft()\n"))
    app.build()
    html = page(app)
    assert "the oldest one" in html
    assert re.search(r'class="nb-line nb-annotated" data-line="15" data-note="1"', html)
