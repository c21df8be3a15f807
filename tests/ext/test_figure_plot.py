"""Figures drawn at build time: themed inline SVG, vector PDF, alt text, palette, dependencies."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from nanobook import plot_style

from tests.ext.conftest import latex, messages_of, page

WHERE = ("records are named by their path under source/_records/, such as "
         "bench/h200/nanovllm_a_graphs.json")


def _svg(html: str, nth: int = 0) -> str:
    return re.findall(r"<svg .*?</svg>", html, re.S)[nth]


@pytest.mark.sphinx("html", testroot="figure", freshenv=True)
def test_a_figure_is_inline_svg_in_the_themes_colours(app):
    app.build()
    assert messages_of(app) == []
    html = page(app)
    figure = re.search(r'<figure class="nb-plot" id="speed">.*?</figure>', html, re.S).group(0)
    svg = _svg(figure)
    assert svg.startswith('<svg xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="')
    assert ('class="nb-plot-svg" role="img" aria-labelledby="speed-title"><title '
            'id="speed-title">Line chart of tokens per second against batch size, rising from 100 '
            'to 300.</title>') in svg
    # It scales with the column (no fixed size), and no colour is left as a literal.
    assert not re.search(r'<svg[^>]* (width|height)=', svg)
    assert re.findall(r"#[0-9a-fA-F]{6}\b", re.sub(r"var\([^)]*\)", "", svg)) == []
    used = set(re.findall(r"var\(--[\w-]+", svg))
    assert {"var(--nb-plot-1", "var(--nb-plot-3", "var(--pst-color-text-base",
            "var(--pst-color-text-muted", "var(--pst-color-border"} <= used
    assert "font-family: var(--pst-font-family-base, sans-serif)" in svg
    # Every id carries the figure's name, and every reference points at one of them.
    ids = re.findall(r'\bid="([^"]+)"', svg)
    assert ids and all(i.startswith("speed-") for i in ids)
    refs = re.findall(r'(?:url\(#|href="#)([^)"]+)', svg)
    assert refs and set(refs) <= set(ids)
    # Text from the code is escaped, and the caption is parsed as markup.
    assert "batch &lt;size&gt;" in svg
    assert "<figcaption>Speed of the <em>toy</em> engine.</figcaption>" in figure
    # The second figure has no name: its ids are its own, so two figures never clash.
    second = _svg(html, 1)
    assert not set(re.findall(r'\bid="([^"]+)"', second)) & set(ids)
    assert 'viewBox="0 0 ' in second


@pytest.mark.sphinx("latex", testroot="figure", freshenv=True)
def test_a_figure_is_a_vector_pdf_in_latex(app):
    app.build()
    tex = latex(app)
    names = re.findall(r"\\includegraphics\[width=\\linewidth\]\{(nb-plot-[0-9a-f]{16}\.pdf)\}", tex)
    assert len(names) == 2
    assert (r"\captionof{figure}{Speed of the \sphinxstyleemphasis{toy} engine.}"
            r"\label{\detokenize{index:speed}}") in tex
    for name in names:
        pdf = (Path(app.outdir) / name).read_bytes()
        assert pdf.startswith(b"%PDF-")
        assert b"/Subtype /Image" not in pdf  # drawn, not a picture of a drawing


@pytest.mark.sphinx("html", testroot="figure", srcdir="figure-rebuild", freshenv=True)
def test_the_figure_is_redrawn_when_its_record_or_engine_file_changes(app):
    app.build()
    srcdir = Path(app.srcdir)
    deps = {Path(p).resolve() for p in app.env.dependencies["index"]}
    assert (srcdir / "_records" / "runs" / "speed.json").resolve() in deps
    assert (srcdir / "toyengine" / "sizes.py").resolve() in deps
    assert Path(plot_style.__file__).resolve() in deps
    before = _svg(page(app))
    record = srcdir / "_records" / "runs" / "speed.json"
    data = json.loads(record.read_text())
    data["results"]["tokens_per_s"] = [100, 180, 900]
    time.sleep(0.01)
    record.write_text(json.dumps(data))
    app.build()
    after = _svg(page(app))
    assert after != before
    assert ">800<" in after  # the y axis now reaches 900: a tick at 800


@pytest.mark.sphinx("html", testroot="figure-errors", freshenv=True)
def test_figure_errors_say_what_is_wrong(app):
    app.build()
    found: dict[str, str] = {}
    for message in messages_of(app):
        doc = re.match(r"\S*/([\w-]+)\.md:\d+: ERROR: (.*)", message, re.S)
        assert doc and doc.group(1) not in found, message
        found[doc.group(1)] = doc.group(2)
    alt = (":alt: is required: say what the figure shows for a reader who cannot see it (what is "
           "plotted against what, and what it shows) [nanobook.figure]")
    raised = found.pop("raises")
    assert raised.startswith(
        "figure-plot 'broken' in 'raises': the code raised ValueError: x and y must have same "
        "first dimension, but have shapes (2,) and (1,)\nTraceback (most recent call last):\n"
        '  File "<raises: figure-plot \'broken\'>", line 2, in <module>\n')
    assert raised.endswith(" [nanobook.figure]")
    assert found == {
        "no-alt": f"figure-plot #1 in 'no-alt': {alt}",
        "blank-alt": f"figure-plot #1 in 'blank-alt': {alt}",
        "bad-name": "figure-plot #1 in 'bad-name': :name: 'Speed Chart' is not allowed; a name "
        "may hold only lowercase letters, digits and '-', starting with a letter or a digit "
        "[nanobook.figure]",
        "bad-size": "figure-plot #1 in 'bad-size': :size: '20x2' is not allowed; give "
        "WIDTHxHEIGHT in inches, width 2 to 12, height 1.5 to 10 (the default is 6.4x3.6) "
        "[nanobook.figure]",
        "bad-timeout": "figure-plot #1 in 'bad-timeout': :timeout: 'soon' is not allowed; give "
        "whole seconds, from 1 to 3600 (the default is 60) [nanobook.figure]",
        "no-code": "figure-plot #1 in 'no-code': it has no code; draw on `figure` "
        "(figure.subplots() gives axes) [nanobook.figure]",
        "syntax": "figure-plot #1 in 'syntax': the code does not parse: '(' was never closed "
        "(line 1) [nanobook.figure]",
        "draws-nothing": "figure-plot #1 in 'draws-nothing': the code drew nothing on `figure`; "
        "draw on the figure it is given (ax = figure.subplots()), not on a new one "
        "[nanobook.figure]",
        "foreign-colour": "figure-plot #1 in 'foreign-colour': the figure uses colours outside "
        "the book's palette: #123456, #ff0000; draw with palette[0] ... palette[6] (Okabe-Ito: "
        "blue, vermillion, bluish green, reddish purple, orange, sky blue, yellow) or "
        "colors['text'], colors['muted'], colors['grid'], colors['background'], so that it "
        "reads in dark mode and for colour-blind readers [nanobook.figure]",
        "record-missing": "figure-plot #1 in 'record-missing': the code raised RecordFileError: "
        "no record 'runs/sped.json'; runs/ holds: speed.json [nanobook.figure]",
        "record-outside": "figure-plot #1 in 'record-outside': the code raised "
        f"RecordFileError: '../conf.py' leads out of source/_records/ with '..'; {WHERE} "
        "[nanobook.figure]",
    }
    # No page holds a figure, and every page was written.
    assert all("nb-plot" not in page(app, doc) for doc in [*found, "raises"])
    assert app.statuscode == 1


# -- the palette ---------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    low, high = sorted((_luminance(a), _luminance(b)))
    return (high + 0.05) / (low + 0.05)


def test_the_first_four_series_colours_read_on_both_backgrounds():
    """WCAG's 3:1 for graphics, on the theme's light (#ffffff) and dark (#14181e) pages."""
    for colour in plot_style.PALETTE[:4]:
        assert _contrast(colour, "#ffffff") >= 3, colour
        assert _contrast(colour, "#14181e") >= 3, colour
    assert plot_style.PALETTE == ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                  "#56b4e9", "#f0e442")  # Okabe and Ito's, without black


def test_every_colour_role_has_a_css_variable_in_the_books_style_sheet():
    css = (Path(plot_style.__file__).parents[2] / "source" / "_static" / "nanobook"
           / "figure-plot.css").read_text()
    for i, colour in enumerate(plot_style.PALETTE, start=1):
        assert f"--nb-plot-{i}: {colour};" in css
        assert plot_style.ROLES[colour] == f"var(--nb-plot-{i}, {colour})"
