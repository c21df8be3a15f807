"""The scheduler stepper of chapter 5: the reader's own requests, given by lengths, step by step.

The reader sets the pool, the block size, the token budget and the sequence budget, adds
requests (a prompt length and an output length) before any step, and steps: the waiting and
running queues, each step's batch, every request's blocks, preemptions and finished requests.
Every step is computed in the page by ``_static/sim/scheduler-replay/logic.js``, the port of
the engine's ``Scheduler`` and ``BlockManager`` that the scheduler replay uses; requests given
by lengths have token ids no other request shares and ignore end-of-sequence, so their lengths
decide everything.

The page data is the chapter's traced run (the directive's scenario options, run on the bundled
model when the book is built), which the reader can load: its settings and its requests with
the tokens they generated. The logic test runs the port and the engine's own ``Scheduler`` on
generated scenarios of requests by lengths that arrive between steps, as the reader adds them,
and compares every step: batches, preemption victims, block tables, the free list. The static
form is the traced run drawn: the blocks each request holds after every step.
"""

from __future__ import annotations

import random
from itertools import pairwise

from . import Widget, engine_trace
from .engine_trace import request_name
from .scheduler_replay import replay

# The chapter's traced run: four prompts on a pool too small for all of them at once.
DEFAULT_PROMPTS = (
    "ROMEO: But, soft! what light through yonder window breaks?",
    "JULIET: O Romeo, Romeo! wherefore art thou Romeo?",
    "HAMLET: To be, or not to be, that is the question:",
    "MACBETH: Tomorrow, and tomorrow, and tomorrow,",
)

PARAMS = engine_trace.scenario_params(
    **{"max-tokens": (24,), "blocks": 20, "block-size": 4, "max-batched-tokens": 32,
       "max-num-seqs": 4, "max-model-len": 1024, "prefix-caching": False})

# What the reader may set in the page (the engine allows more; these keep a run readable).
LIMITS = {"blocks": (1, 256), "block_size": (1, 2, 4, 8, 16), "budget": (1, 1024),
          "seqs": (1, 32), "prompt": (1, 1000), "output": (1, 200), "requests": 26}


def data(params: dict) -> dict:
    scenario = engine_trace.scenario_from(params, DEFAULT_PROMPTS)
    run = engine_trace.run_engine(scenario)
    return {"traced": engine_trace.scenario_of(run), "limits": LIMITS}


# -- the Python side of the logic test ------------------------------------------------------------

def scenarios(seed: int, count: int) -> list[dict]:
    """Requests by lengths arriving before any step, small pools (preemption), small budgets
    (chunks), every block size; prefix caching off, as in the widget."""
    rng = random.Random(seed)
    return [_scenario(rng) for _ in range(count)]


def _scenario(rng: random.Random) -> dict:
    block_size = rng.choice([1, 2, 4, 8, 16])
    max_model_len = rng.randint(8, 64)
    requests, need = [], 1
    for seq_id in range(rng.randint(1, 7)):
        prompt = rng.randint(1, max_model_len - 1) if rng.random() < 0.3 else \
            rng.randint(1, min(12, max_model_len - 1))
        output = rng.randint(1, 16)
        requests.append({"seq_id": seq_id, "prompt_length": prompt, "output_length": output,
                         "arrival": rng.choice([0, 0, rng.randint(0, 20)])})
        need = max(need, -(-(min(prompt + output, max_model_len) - 1) // block_size))
    config = {"block_size": block_size, "num_kvcache_blocks": need + rng.randint(0, 5),
              "max_num_seqs": rng.randint(1, 6), "max_num_batched_tokens": rng.randint(1, 40),
              "max_model_len": max_model_len, "enable_prefix_caching": False,
              "enable_chunked_prefill": True, "eos_token_id": 0}
    return {"config": config, "requests": requests}


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    steps = [step for states in all_states for step in states]

    def recomputed(states):  # a preempted sequence admitted again later
        out = set()
        for step in states:
            out |= {i for i in step["batch"]["preempted_seq_ids"]
                    if any(i in later["batch"]["seq_ids"] for later in states[step["step"] + 1:])}
        return out

    return {
        "a preemption": any(step["batch"]["preempted_seq_ids"] for step in steps),
        "a preempted sequence recomputed": any(recomputed(states) for states in all_states),
        "a prompt computed in chunks": any(
            p and not s for step in steps
            for p, s in zip(step["batch"]["is_prefill"], step["batch"]["do_sample"], strict=True)),
        "a request joining while others run": any(
            step["added"] and any(s["status"] == "running" for s in before["seqs"])
            for states in all_states for before, step in pairwise(states)),
        "a request waiting while others run": any(
            {"waiting", "running"} <= {s["status"] for s in step["seqs"]} for step in steps),
    }


# -- the static form ------------------------------------------------------------------------------

def static_form(params: dict, payload: dict) -> list:
    """The traced run drawn: blocks held per request after every step, preemptions marked."""
    from ..figure_plot import drawn_figure
    from ..plot_style import COLORS, PALETTE

    traced = payload["traced"]
    steps = replay(traced)  # the engine's Scheduler on the run's requests: the run's trace
    names = [request_name(r["seq_id"]) for r in traced["requests"]]
    pool = traced["config"]["num_kvcache_blocks"]
    held = [[next((len(s["block_table"]) for s in step["seqs"] if s["seq_id"] == i), 0)
             for step in steps] for i in range(len(names))]
    preemptions = [(step["step"] + 1, request_name(v)) for step in steps
                   for v in step["batch"]["preempted_seq_ids"]]

    def draw(figure):
        ax = figure.subplots()
        xs = range(1, len(steps) + 1)
        ax.stackplot(xs, *held, labels=[f"request {n}" for n in names],
                     colors=PALETTE[:len(names)], alpha=0.85, step="post")
        ax.axhline(pool, color=COLORS["muted"], linestyle="--", marker="",
                   label=f"the pool ({pool} blocks)")
        for step, name in preemptions:
            ax.annotate(f"{name} preempted", (step, pool), xytext=(step, pool + 3.5),
                        ha="center", fontsize=8, color=COLORS["text"],
                        arrowprops={"arrowstyle": "->", "color": COLORS["text"]})
        ax.set_ylim(0, pool + 7)
        ax.set_xlim(1, len(steps))
        ax.set_xlabel("step")
        ax.set_ylabel("KV blocks held")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=len(names) + 1,
                  fontsize=8)

    alt = (f"Stacked area chart of the KV blocks each of the {len(names)} requests holds after "
           f"each of {len(steps)} steps, under a dashed line at the pool's {pool} blocks. "
           + "; ".join(f"{name} is preempted at step {step}" for step, name in preemptions)
           + ": its blocks drop to zero and come back later, when it is recomputed.")
    caption = (f"The traced run in the engine's scheduler: {len(names)} requests, "
               f"{settings_sentence(traced['config'])}. Arrows mark preemptions.")
    return [drawn_figure(draw, "scheduler-stepper-traced-run", alt, caption)]


def settings_sentence(config: dict) -> str:
    return (f"{config['num_kvcache_blocks']} blocks of {config['block_size']} tokens, a budget "
            f"of {config['max_num_batched_tokens']} tokens and at most {config['max_num_seqs']} "
            "sequences a step")


WIDGET = Widget(
    name="scheduler-stepper",
    title="Scheduler stepper",
    view="sim/scheduler-stepper/view.js",
    logic="sim/scheduler-replay/logic.js",
    params=PARAMS,
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/scheduler-replay/style.css", "sim/scheduler-stepper/style.css"),
    engine_modules=("nanovllm.engine.llm_engine",),
    engine_files=("nanovllm/data/**/*",),
)
