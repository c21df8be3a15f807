"""The batching timeline of chapter 5: the same requests under static and continuous batching.

Both runs use the engine's scheduler with ``max_num_seqs`` set to the number of slots, a pool
and a token budget large enough that only the slots limit a step. Continuous batching queues
every request at once; static batching queues the next group of that many requests only when
the engine has finished the group before (``is_finished()``). The widget draws, for each,
which request holds each slot at every step, and counts the steps and the idle slots.

Both runs are computed in the page by ``_static/sim/scheduler-replay/logic.js`` (the port of
the engine's ``Scheduler`` and ``BlockManager``; ``staticBatching`` there turns the groups into
arrivals that come only when the engine is idle). The logic test compares it with the engine's
``Scheduler`` on generated scenarios of both kinds, step by step. The static form draws the
directive's requests, run through the engine's ``Scheduler``.
"""

from __future__ import annotations

import random

from . import Param, Widget
from .engine_trace import request_name
from .scheduler_replay import replay

OUTPUT_LENGTHS = (3, 41, 9, 14, 30, 6, 35, 11, 18, 4, 24, 27)  # the chapter's check

PARAMS = {
    "output-lengths": Param(int, OUTPUT_LENGTHS, 1, 200, "tokens each request generates",
                            many=True, max_items=26),
    "prompt-length": Param(int, 8, 1, 64, "prompt tokens of every request"),
    "slots": Param(int, 4, 1, 16, "sequences a step can hold (max_num_seqs)"),
}
MAX_SLOTS = 16  # with prompts of at most 64 tokens, every prefill of a step fits its budget


def config(slots: int) -> dict:
    """Room for everything at once: only ``max_num_seqs`` limits a step (as in the check)."""
    return {"block_size": 16, "num_kvcache_blocks": 1024, "max_num_seqs": slots,
            "max_num_batched_tokens": 1024, "max_model_len": 4096,
            "enable_prefix_caching": False, "enable_chunked_prefill": True, "eos_token_id": 0}


def scenario(lengths, prompt_length: int, slots: int, batching: str) -> dict:
    requests = [{"seq_id": i, "prompt_length": prompt_length, "output_length": n, "arrival": 0}
                for i, n in enumerate(lengths)]
    return {"config": config(slots), "requests": requests, "batching": batching}


def data(params: dict) -> dict:
    lengths, prompt = params["output-lengths"], params["prompt-length"]
    return {"outputLengths": list(lengths), "promptLength": prompt, "slots": params["slots"],
            "maxSlots": MAX_SLOTS, "base": scenario(lengths, prompt, params["slots"], "static")}


def slot_use(steps: list[dict], slots: int) -> tuple[int, int]:
    """Steps of a run, and the slots its steps left empty."""
    return len(steps), slots * len(steps) - sum(len(s["batch"]["seq_ids"]) for s in steps)


# -- the Python side of the logic test ------------------------------------------------------------

def scenarios(seed: int, count: int) -> list[dict]:
    """Random requests under both batchings, sometimes with small pools and budgets too."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        lengths = [rng.randint(1, 20) for _ in range(rng.randint(1, 10))]
        s = scenario(lengths, rng.randint(1, 12), rng.randint(1, 6),
                     rng.choice(["static", "continuous"]))
        if rng.random() < 0.3:  # tight settings: the slots are not the only limit
            s["config"].update(block_size=4, num_kvcache_blocks=rng.randint(11, 20),
                               max_num_batched_tokens=rng.randint(1, 24), max_model_len=48)
        out.append(s)
    return out


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    def wasted(states):  # a step below the run's widest batch while requests are still to come
        widest = max(len(step["batch"]["seq_ids"]) for step in states)
        return any(len(step["batch"]["seq_ids"]) < widest
                   and any(later["added"] for later in states[step["step"] + 1:])
                   for step in states)

    steps = [step for states in all_states for step in states]
    return {
        "a group joining once the engine is idle": any(
            step["added"] and step["step"] > 0 for step in steps),
        "slots left empty while requests are still to come": any(map(wasted, all_states)),
        "a prompt computed in chunks": any(
            p and not s for step in steps
            for p, s in zip(step["batch"]["is_prefill"], step["batch"]["do_sample"], strict=True)),
        "a preemption": any(step["batch"]["preempted_seq_ids"] for step in steps),
    }


# -- the static form ------------------------------------------------------------------------------

def placements(steps: list[dict], slots: int) -> dict[int, list[tuple[int, int]]]:
    """Which slot each request holds at each step: it keeps the lowest slot free when it
    first runs until it leaves the batch. Returns slot -> [(step, seq_id)]."""
    holder: dict[int, int] = {}
    out: dict[int, list[tuple[int, int]]] = {k: [] for k in range(slots)}
    for step in steps:
        ids = step["batch"]["seq_ids"]
        holder = {seq: k for seq, k in holder.items() if seq in ids}
        for seq in ids:
            if seq not in holder:
                holder[seq] = min(set(range(slots)) - set(holder.values()))
        for seq, k in holder.items():
            out[k].append((step["step"], seq))
    return out


def stretches(cells: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(first step, steps, seq_id) of each unbroken stretch a request holds a slot."""
    out: list[list[int]] = []
    for step, seq in cells:
        if out and out[-1][2] == seq and out[-1][0] + out[-1][1] == step:
            out[-1][1] += 1
        else:
            out.append([step, 1, seq])
    return [tuple(x) for x in out]


def static_form(params: dict, payload: dict) -> list:
    from ..figure_plot import drawn_figure
    from ..plot_style import COLORS, PALETTE

    slots = payload["slots"]
    runs = {}
    for batching in ("static", "continuous"):
        steps = replay({**payload["base"], "batching": batching})
        runs[batching] = (steps, placements(steps, slots))
    longest = max(len(steps) for steps, _ in runs.values())

    def draw(figure):
        axes = figure.subplots(2, 1, sharex=True)
        for ax, (batching, (steps, where)) in zip(axes, runs.items(), strict=True):
            for slot, cells in where.items():
                for first, length, seq in stretches(cells):
                    ax.broken_barh([(first + 0.5, length)], (slot + 0.1, 0.8),
                                   facecolors=PALETTE[seq % len(PALETTE)],
                                   edgecolor=COLORS["background"], linewidth=1)
                    if length >= 3:
                        ax.text(first + 1, slot + 0.5, request_name(seq), va="center",
                                fontsize=7, color=COLORS["text"])
            n, idle = slot_use(steps, slots)
            ax.set_title(f"{batching} batching: {n} steps, {idle} idle slots", loc="left",
                         color=COLORS["text"])
            ax.set_ylim(0, slots)
            ax.set_yticks([k + 0.5 for k in range(slots)], [str(k + 1) for k in range(slots)])
            ax.set_ylabel("slot")
            ax.grid(False)
        axes[1].set_xlim(0.5, longest + 0.5)
        axes[1].set_xlabel("step")

    (s_steps, _), (c_steps, _) = runs["static"], runs["continuous"]
    s_n, s_idle = slot_use(s_steps, slots)
    c_n, c_idle = slot_use(c_steps, slots)
    n = len(payload["outputLengths"])
    alt = (f"Two timelines of {slots} slots against steps, one colour per request, for the same "
           f"{n} requests. Static batching takes {s_n} steps and leaves {s_idle} slots idle, "
           f"empty gaps after each request of a group ends until the group's longest is done; "
           f"continuous batching takes {c_n} steps and leaves {c_idle} slots idle, all of them "
           "at the end when no request waits.")
    caption = (f"{n} requests of {payload['promptLength']} prompt tokens generating "
               f"{', '.join(map(str, payload['outputLengths']))} tokens, {slots} slots, run "
               "through the engine's scheduler. Letters name the requests in order; colours "
               "repeat after seven.")
    return [drawn_figure(draw, "batching-timeline-figure", alt, caption, size=(6.4, 4.2))]


WIDGET = Widget(
    name="batching-timeline",
    title="Batching timeline",
    view="sim/batching-timeline/view.js",
    logic="sim/scheduler-replay/logic.js",
    params=PARAMS,
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/batching-timeline/style.css",),
    engine_modules=("nanovllm.engine.scheduler",),
)
