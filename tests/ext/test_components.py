"""Simulators, callouts and computed values on small test books; the warning list."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from nanobook.warnings import BookWarning, documented_members

from tests.ext.conftest import (
    ROOT,
    assert_snapshot,
    fragment,
    latex,
    messages_of,
    page,
    warnings_of,
)

# -- simulators ----------------------------------------------------------------------------------


@pytest.mark.sphinx("html", testroot="sim", freshenv=True)
def test_simulator_mounts_with_its_parameters_and_engine_data(app):
    app.build()
    assert warnings_of(app) == ""
    html = page(app)
    figure = fragment(html, "figure", "nb-sim")
    params = json.loads(unescape(re.search(r"data-params='([^']*)'", figure).group(1)))
    assert params["numBlocks"] == 8 and params["blockSize"] == 2
    assert [op["seq"] for op in params["example"]["ops"]][:3] == ["A", "B", "A"]
    assert '<figcaption>A small pool.</figcaption>' in figure
    # The static form (the engine's trace) is in the page too, folded.
    assert '<details class="nb-sim-static-html">' in figure
    assert "free list front first" in figure and "Contiguous: regions" in figure
    assert_snapshot("sim-mount.html", figure.split("<details", 1)[0])
    # The loader only on the page that uses a simulator.
    assert 'type="module" src="_static/sim/loader.js' in html
    assert "sim/loader.js" not in page(app, "plain")


@pytest.mark.sphinx("html", testroot="sim", freshenv=True)
def test_files_a_view_fetches_are_copied_into_the_build(app):
    """The tokenizer playground fetches the bundled model's tokenizer.json: every HTML build
    copies that file, unchanged, to where the view looks for it."""
    app.build()
    copied = Path(app.outdir) / "_static" / "sim" / "tokenizer" / "tiny-shakespeare.json"
    bundled = ROOT / "nanovllm" / "data" / "tiny-shakespeare" / "tokenizer.json"
    assert copied.read_bytes() == bundled.read_bytes()


@pytest.mark.sphinx("latex", testroot="sim", freshenv=True)
def test_simulator_static_form_in_latex(app):
    app.build()
    assert warnings_of(app) == ""
    tex = latex(app)
    sim = tex[tex.index(r"\begin{nbsim}"): tex.index(r"\end{nbsim}")]
    assert r"\begin{nbsim}{Paged KV allocator}" in sim
    assert r"\sphinxhref{https://book.example/index.html\#sim-paged-allocator}" in sim
    # One row per step of the example: the engine's BlockManager beside a first-fit arena.
    assert sim.count(r"\\") == 10  # the header and 9 steps
    assert r"add D: 3\sphinxhyphen{}token prompt, room for 5 (refused by the contiguous side)" in sim
    assert "A: {[}0, 1, 4{]} (5); B: {[}2, 3{]} (3)" in sim  # A grew into block 4
    assert r"A: 0\sphinxhyphen{}4 (5 of 5); C: 9\sphinxhyphen{}13 (5 of 5)" in sim
    assert r"holes: 5\sphinxhyphen{}8, 14\sphinxhyphen{}15" in sim


@pytest.mark.sphinx("html", testroot="sim-errors", freshenv=True)
def test_simulator_errors(app):
    app.build()
    messages = messages_of(app)
    assert len(messages) == 4, messages
    assert ("no such widget; known widgets: batching-timeline, block-table-walk, kv-memory, "
            "next-token, paged-allocator, prefix-cache, scheduler-replay, scheduler-stepper, "
            "tokenizer-playground") in messages[0]
    assert "unknown parameter :colour:; it takes :blocks: (blocks in the pool, default 12)" in messages[1]
    assert "blocks: 1000 is above the maximum 64" in messages[2]
    assert "block-size: expected int, got 'four'" in messages[3]
    assert all(m.endswith("[nanobook.simulator]") for m in messages)


# -- callouts --------------------------------------------------------------------------------------


@pytest.mark.sphinx("html", testroot="callouts", freshenv=True)
def test_callouts_html(app):
    app.build()
    html = page(app)
    analogy = fragment(html, "aside", "nb-analogy")
    assert '<p class="admonition-title">Analogy: A cloakroom</p>' in analogy
    assert 'class="admonition nb-why"' in html and "Why it matters" in html
    myths = fragment(html, "div", "nb-misconceptions")
    assert_snapshot("misconceptions.html", myths)
    assert myths.count('<span class="nb-myth-label">') == 2
    assert "<em>weights</em>" in myths and "The weights are shared." in myths
    takeaways = fragment(html, "div", "nb-takeaways")
    assert '<ul class="simple nb-takeaways-grid">' in takeaways or 'nb-takeaways-grid' in takeaways


@pytest.mark.sphinx("html", testroot="callouts", freshenv=True)
def test_callout_errors(app):
    app.build()
    messages = [m for m in messages_of(app) if "errors.md" in m]
    assert "myth 'A myth without its reality.' has no reality" in messages[0]
    assert "the content must be one bullet list" in messages[1]
    assert "analogy in 'errors' has no text" in messages[2]
    assert all(m.endswith("[nanobook.callout]") for m in messages)


@pytest.mark.sphinx("latex", testroot="callouts", freshenv=True)
def test_callouts_latex(app):
    app.build()
    tex = latex(app)
    assert r"\begin{sphinxadmonition}{tip}{Analogy: A cloakroom}" in tex
    assert r"\begin{sphinxadmonition}{important}{Why it matters}" in tex
    assert r"\begin{sphinxuseclass}{nb-misconceptions}" in tex and "Myth" in tex and "Reality" in tex


# -- values ----------------------------------------------------------------------------------------


@pytest.mark.sphinx("html", testroot="values", freshenv=True)
def test_values_are_computed_at_build_time(app):
    app.build()
    text = " ".join(re.sub(r"<[^>]+>", "", page(app)).split())
    # 2 x 4 layers x 2 KV heads x 32 head size x 2 bytes = 1,024; in float32 2,048 bytes = 2 KiB.
    assert "A token takes 1,024 bytes, 2 KiB in float32, it has 4 layers" in text
    assert "1.024e+03 in scientific notation" in text
    assert "The default block holds 16 tokens; the engine file has 7 lines." in text


@pytest.mark.sphinx("html", testroot="values", freshenv=True)
def test_value_errors_name_what_is_known(app):
    app.build()
    messages = [m for m in messages_of(app) if "errors.md" in m]
    assert len(messages) == 4, messages
    assert ("unknown value 'kv_size'; known values: birthday_attempts, decode_step, "
            "engine_constant, engine_default, engine_lines, hardware, key_collision, kv_bytes, "
            "kv_bytes_per_token, kv_fragmentation, model_config, param_count, prefill_step, "
            "profile_step, record, step_weight_bytes, weight_bytes") in messages[0]
    assert "no model 'acme/huge'; known models: tiny, acme/tiny-7" in messages[1]
    assert "dtype 'float64' is not one of float32, float16, bfloat16" in messages[2]
    assert "Config has no field 'nothing'" in messages[3]
    assert all(m.endswith("[nanobook.value]") for m in messages)


# -- the warning list --------------------------------------------------------------------------------


def test_every_warning_is_documented_and_used():
    members = dict(documented_members())
    assert set(members) == {w.value for w in BookWarning}
    assert all(members.values()), [k for k, v in members.items() if not v]
    sources = "\n".join(p.read_text() for p in (ROOT / "_ext" / "nanobook").glob("*.py")
                        if p.name != "warnings.py")
    unused = [w.name for w in BookWarning if f"BookWarning.{w.name}" not in sources]
    assert unused == []


def test_warnings_carry_the_nanobook_type(tmp_path):
    assert Path(ROOT / "_ext" / "nanobook" / "warnings.py").read_text().count('type=WARNING_TYPE') == 2
