"""Widgets whose data is a run of the real engine, made at build time from directive options.

The run's trace is the engine's own (``LLMEngine`` with its trace recorder); the JavaScript
logic the widget replays it with must give back exactly that trace from the run's inputs, and
the page must be read again when an engine file the run depends on changes.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
from nanobook.sims import registry, scheduler_replay

from tests.conftest import ROOT
from tests.ext.conftest import fragment, latex, messages_of, page, warnings_of
from tests.ext.test_simulator_logic import run_in_node


def payloads(html: str) -> dict[str, dict]:
    """Each simulator's page data, by its anchor."""
    out = {}
    for index in range(html.count('<figure class="nb-sim"')):
        figure = fragment(html, "figure", "nb-sim", index)
        anchor = re.search(r'<figure class="nb-sim" id="([^"]+)"', figure).group(1)
        out[anchor] = json.loads(unescape(re.search(r"data-params='([^']*)'", figure).group(1)))
    return out


@pytest.mark.sphinx("html", testroot="trace", freshenv=True)
def test_the_page_carries_the_engines_run_and_the_js_replays_it_exactly(app):
    app.build()
    assert warnings_of(app) == ""
    data = payloads(page(app))
    assert set(data) == {"default-run", "by-length"}
    for run in data.values():
        trace, scenario = run["trace"], run["scenario"]
        assert trace["schema"] == "nanovllm.trace/1"
        # Sequences are numbered in the order the requests were given, whatever the build did.
        assert [r["seq_id"] for r in scenario["requests"]] == list(range(len(run["texts"])))
        # The Python scheduler and the JavaScript port, from the run's inputs, give its trace.
        assert scheduler_replay.replay(scenario) == trace["steps"]
    js = run_in_node(registry()["scheduler-replay"].logic, [d["scenario"] for d in data.values()])
    assert js == [d["trace"]["steps"] for d in data.values()]


@pytest.mark.sphinx("html", testroot="trace", freshenv=True)
def test_the_options_make_the_scenario(app):
    app.build()
    run = payloads(page(app))["by-length"]
    assert run["trace"]["config"] == {
        "block_size": 4, "num_kvcache_blocks": 5, "max_num_seqs": 3, "max_num_batched_tokens": 8,
        "max_model_len": 128, "enable_prefix_caching": False, "enable_chunked_prefill": True,
        "eos_token_id": run["trace"]["config"]["eos_token_id"]}
    requests = run["scenario"]["requests"]
    assert [len(r["prompt_token_ids"]) for r in requests] == [10, 3]
    assert [r["max_tokens"] for r in requests] == [2, 4]
    assert [r["arrival"] for r in requests] == [0, 1]
    assert [len(r["completion"]) for r in requests] == [2, 4]  # ignore-eos is on by default
    assert run["texts"] == [None, None]
    default = payloads(page(app))["default-run"]
    assert default["texts"] == list(scheduler_replay.DEFAULT_PROMPTS)
    assert [r["arrival"] for r in default["scenario"]["requests"]] == [0, 0, 0, 3]
    # Every token of the run has its text, for the widget to show.
    tokens = {t for r in default["scenario"]["requests"]
              for t in r["prompt_token_ids"] + r["completion"]}
    assert {int(t) for t in default["tokenText"]} == tokens


@pytest.mark.sphinx("html", testroot="trace", freshenv=True)
def test_the_static_form_is_the_run_step_by_step(app):
    app.build()
    figure = fragment(page(app), "figure", "nb-sim", 1)
    static = unescape(re.sub(r"<[^>]+>", "|", figure.split("<details", 1)[1]))
    cells = [c.strip() for c in static.split("|") if c.strip()]
    steps = cells[cells.index("Free", cells.index("Step")) + 1:]
    # Prompt lengths 10 and 3, a budget of 8, 5 blocks of 4 tokens, prefix caching off.
    assert steps == [
        "1", "A prompt 8 (chunk)", "-", "-", "A: 0 1", "3",
        "2", "A prompt 2, B prompt 3", "-", "-", "A: 0 1 2; B: 3", "1",
        "3", "A decode, B decode", "A ends (length)", "-", "B: 3", "4",
        "4", "B decode", "-", "-", "B: 3 0", "3",
        "5", "B decode", "B ends (length)", "-", "-", "5",
    ]


@pytest.mark.sphinx("html", testroot="trace", freshenv=True)
def test_the_page_depends_on_the_engine_files_the_run_reaches(app):
    app.build()
    deps = {Path(d).resolve().relative_to(ROOT).as_posix()
            for d in app.env.dependencies["index"]}
    for rel in ("nanovllm/engine/llm_engine.py", "nanovllm/engine/scheduler.py",
                "nanovllm/engine/block_manager.py", "nanovllm/engine/trace.py",
                "nanovllm/models/qwen3.py", "nanovllm/config.py",
                "nanovllm/data/tiny-shakespeare/model.safetensors"):
        assert rel in deps, rel


@pytest.mark.sphinx("latex", testroot="trace", freshenv=True)
def test_the_pdf_prints_the_run_as_tables(app):
    app.build()
    assert warnings_of(app) == ""
    tex = latex(app)
    sims = re.findall(r"\\begin\{nbsim\}.*?\\end\{nbsim\}", tex, re.S)
    assert len(sims) == 2
    assert "A run of the engine on the bundled model, made when this book was built: 5 blocks" \
        in sims[1]
    assert "JULIET: O Romeo, Romeo! wherefore art thou Romeo?" in sims[0]
    assert "B prompt 4 (chunk, 4 cached)" in sims[0]  # B's first block is A's
    assert "C preempted" in sims[0]
    assert r"\sphinxhref{https://book.example/index.html\#by-length}" in sims[1]


@pytest.mark.sphinx("html", testroot="trace-errors", freshenv=True)
def test_bad_scenarios_fail_the_build_naming_the_option(app):
    app.build()
    prefix = "ERROR: simulator 'scheduler-replay' in 'index': "
    assert [m.split(prefix, 1)[1] for m in messages_of(app)] == [
        ':prompts: expected a JSON list of non-empty strings, such as ["ROMEO:", "JULIET:"], '
        "got 'ROMEO:' [nanobook.simulator]",
        ":prompts: and :prompt-lengths: both given; give the prompts as texts or as lengths, "
        "not both [nanobook.simulator]",
        ":max-tokens: has 3 values for 2 requests; give one value for all of them or one per "
        "request [nanobook.simulator]",
        ":arrivals: has 1 value for 2 requests; give one per request [nanobook.simulator]",
        ":block-size: 3 is invalid: a power of two (1, 2, 4, ..., 16, ...); the attention "
        "kernels tile by it [nanobook.simulator]",
        "request A cannot run: prompt plus max_tokens needs up to 5 KV blocks, but the pool has "
        "2 blocks of 4 tokens; lower max_tokens or give the KV cache more memory (in the "
        "directive: raise :blocks: or lower :max-tokens:) [nanobook.simulator]",
        ":max-batched-tokens: 16 is invalid: with enable_chunked_prefill=False it must be >= "
        "max_model_len (128) so any prompt fits in one step; raise it, lower max_model_len, or "
        "enable chunked prefill [nanobook.simulator]",
        "request A cannot run: the prompt has 200 tokens; it must be shorter than "
        "max_model_len=128 to leave room for output (in the directive: raise :max-model-len: "
        "or shorten the prompt) [nanobook.simulator]",
        "the run takes more than 200 steps; make it shorter (fewer or shorter requests, lower "
        ":max-tokens:, a larger :max-batched-tokens:) [nanobook.simulator]",
        ":temperature: -1.0 is below the minimum 0 [nanobook.simulator]",
        ":prompt-lengths: expected int, got 'x' [nanobook.simulator]",
        "unknown parameter :pool:; it takes :prompts: (the prompts, a JSON list of texts; none: "
        "the widget's own, default none), :prompt-lengths: (prompt lengths in tokens, instead "
        "of :prompts:, default none), :max-tokens: (tokens to generate, one value or one per "
        "request, default 6), :arrivals: (the step each request arrives before, one per "
        "request; none: all before the first, default none), :ignore-eos: (generate "
        "max-tokens even past end-of-sequence, default on), :temperature: (sampling "
        "temperature; 0 is greedy, default 0.0), :blocks: (KV blocks in the pool, default 9), "
        ":block-size: (tokens per block, a power of two, default 4), :max-num-seqs: (sequences "
        "in one step, default 3), :max-batched-tokens: (token budget of a step, default 16), "
        ":max-model-len: (prompt plus output, at most, default 128), :prefix-caching: (prefix "
        "caching on or off, default on), :chunked-prefill: (chunked prefill on or off, default "
        "on) [nanobook.simulator]",
    ]
    assert app.statuscode == 1
