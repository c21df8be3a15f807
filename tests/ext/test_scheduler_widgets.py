"""Chapter 5's widgets: the scheduler stepper and the batching timeline.

Both compute in the page with the scheduler replay's port (``logic.js``); the logic test
(``test_simulator_logic.py``) compares it with the engine on their generated scenarios. Here:
static batching as the port runs it (arrivals that come only when the engine is idle) is the
chapter's definition (the next group queued when ``is_finished()``), the stepper's traced run
is replayed exactly by the port, and the static forms draw what the engine's scheduler does.
"""

from __future__ import annotations

import random

import pytest
from nanobook.figure_plot import plot_figure
from nanobook.sims import batching_timeline, engine_trace, registry, scheduler_stepper
from nanobook.sims.scheduler_replay import length_request, replay

from tests.ext.test_simulator_logic import run_in_node


def defaults(widget: str) -> dict:
    return {key: p.default for key, p in registry()[widget].params.items()}


def static_batching_by_hand(config: dict, requests: list[dict]) -> list[dict]:
    """The chapter's static batching: the engine's Scheduler, the next ``max_num_seqs``
    requests queued only when the scheduler ``is_finished()``."""
    from nanovllm.config import Config
    from nanovllm.engine.scheduler import Scheduler
    from nanovllm.engine.sequence import Sequence
    from nanovllm.engine.trace import TraceRecorder
    from nanovllm.sampling_params import SamplingParams

    settings = dict(config)
    eos_token_id = settings.pop("eos_token_id")
    scheduler = Scheduler(Config(**settings), eos_token_id)
    recorder = TraceRecorder(scheduler)
    pending = [length_request(r["seq_id"], r["prompt_length"], r["output_length"])
               for r in requests]
    completion = {r["seq_id"]: r["completion"] for r in pending}
    while pending or not scheduler.is_finished():
        if scheduler.is_finished():
            group, pending = pending[:config["max_num_seqs"]], pending[config["max_num_seqs"]:]
            for r in group:
                params = SamplingParams(max_tokens=r["max_tokens"], ignore_eos=True)
                scheduler.add(Sequence(r["prompt_token_ids"], params, seq_id=r["seq_id"]))
        batch = scheduler.schedule()
        sampled = [completion[s.seq_id][s.num_completion_tokens]
                   for s, do in zip(batch.seqs, batch.do_sample, strict=True) if do]
        scheduler.postprocess(batch, sampled)
        recorder.record_step(batch, sampled)
    return recorder.steps


def test_static_batching_in_the_port_is_queueing_each_group_when_the_engine_is_finished():
    rng = random.Random(5)
    scenarios = []
    for _ in range(60):
        lengths = [rng.randint(1, 25) for _ in range(rng.randint(1, 11))]
        scenarios.append(batching_timeline.scenario(lengths, rng.randint(1, 9),
                                                    rng.randint(1, 5), "static"))
    by_hand = [static_batching_by_hand(s["config"], s["requests"]) for s in scenarios]
    assert [replay(s) for s in scenarios] == by_hand
    assert run_in_node(registry()["batching-timeline"].logic, scenarios) == by_hand


def test_the_timeline_counts_the_chapters_requests_as_the_engine_does():
    params = defaults("batching-timeline")
    payload = batching_timeline.data(params)
    static = static_batching_by_hand(payload["base"]["config"], payload["base"]["requests"])
    continuous = replay({**payload["base"], "batching": "continuous"})
    lengths = batching_timeline.OUTPUT_LENGTHS
    # Static: each group of four takes as many steps as its longest request (one token a step).
    groups = [lengths[i:i + 4] for i in range(0, len(lengths), 4)]
    assert len(static) == sum(max(g) for g in groups)
    assert batching_timeline.slot_use(static, 4) == (
        sum(max(g) for g in groups), sum(4 * max(g) - sum(g) for g in groups))
    assert len(continuous) < len(static)
    (figure,) = batching_timeline.static_form(params, payload)
    assert isinstance(figure, plot_figure)
    n, idle = batching_timeline.slot_use(static, 4)
    m, idle2 = batching_timeline.slot_use(continuous, 4)
    assert f"Static batching takes {n} steps and leaves {idle} slots idle" in figure["alt"]
    assert f"continuous batching takes {m} steps and leaves {idle2} slots idle" in figure["alt"]
    assert figure["svg"].startswith("<svg") and figure["pdf"].startswith(b"%PDF")


def test_the_timeline_places_each_request_in_one_slot_until_it_leaves():
    steps = replay(batching_timeline.scenario((3, 1, 2), 4, 2, "continuous"))
    # A (3 tokens) and B (1) start together; C takes B's slot when B is done.
    assert batching_timeline.placements(steps, 2) == {
        0: [(0, 0), (1, 0), (2, 0)], 1: [(0, 1), (1, 2), (2, 2)]}


@pytest.fixture(scope="module")
def traced():
    scenario = engine_trace.scenario_from(defaults("scheduler-stepper"),
                                          scheduler_stepper.DEFAULT_PROMPTS)
    return engine_trace.run_engine(scenario)


def test_the_stepper_loads_the_traced_run_and_the_port_replays_it_exactly(traced):
    steps = traced.trace["steps"]
    assert sum(len(s["batch"]["preempted_seq_ids"]) for s in steps) >= 2  # the pool is small
    assert traced.trace["config"]["enable_prefix_caching"] is False
    scenario = engine_trace.scenario_of(traced)
    assert replay(scenario) == steps
    assert run_in_node(registry()["scheduler-stepper"].logic, [scenario]) == [steps]


def test_the_stepper_figure_marks_the_traced_runs_preemptions(traced):
    payload = {"traced": engine_trace.scenario_of(traced)}
    (figure,) = scheduler_stepper.static_form({}, payload)
    marked = [f"{engine_trace.request_name(v)} is preempted at step {s['step'] + 1}"
              for s in traced.trace["steps"] for v in s["batch"]["preempted_seq_ids"]]
    assert marked and all(m in figure["alt"] for m in marked)
    assert "20 blocks of 4 tokens, a budget of 32 tokens" in figure.astext()


def test_requests_by_lengths_share_no_token_and_never_end_early():
    a, b = length_request(0, 5, 3), length_request(1, 2, 4, arrival=7)
    assert a["prompt_token_ids"] == [1, 2, 3, 4, 5] and a["completion"] == [6, 7, 8]
    assert b["prompt_token_ids"] == [4097, 4098] and b["arrival"] == 7
    assert a["ignore_eos"] and not a["stop_token_ids"] and 0 not in a["completion"]
