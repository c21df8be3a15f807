"""The scheduler of chapter 5, replayed: a run of the real engine, step by step.

The page data is a run of ``LLMEngine`` on the bundled model, made when the book is built
from the scenario in the directive's options (``engine_trace``): every step's batch, the
sequences' states and block tables, the pool's free list and ref counts, the tokens sampled.
The widget steps through it; its "what if" controls run the same requests again under other
settings (pool size, token budget, sequences per step, prefix caching, chunked prefill) with
``_static/sim/scheduler-replay/logic.js``, a port of the scheduler and the block manager, in
which each request generates the same tokens as in the engine's run.

``replay(scenario)`` runs a scenario through the engine's own ``Scheduler`` (with its trace
recorder), each request sampling the tokens its scenario lists; the logic test compares it
with ``logic.js`` on generated scenarios, step by step, and the extension's tests compare the
build-time run itself with the JavaScript replay of it. The static form is the run as tables.
"""

from __future__ import annotations

import random

from docutils import nodes

from . import Widget, engine_trace, printed
from .engine_trace import request_name

DEFAULT_PROMPTS = (
    "JULIET: O Romeo, Romeo! wherefore art thou Romeo?",
    "JULIET: O Romeo, Romeo! Deny thy father",
    "HAMLET: To be, or not to be",
    "ROMEO: But, soft!",
)
DEFAULT_ARRIVALS = (0, 0, 0, 3)

# The default run shows most of chapter 5 in 13 steps: a prompt cut into chunks, a prefix-cache
# hit (A and B share their first block), a preemption, its recompute, a late arrival.
PARAMS = engine_trace.scenario_params(
    **{"max-tokens": (6,), "blocks": 9, "block-size": 4,
       "max-batched-tokens": 16, "max-num-seqs": 3})


def data(params: dict) -> dict:
    scenario = engine_trace.scenario_from(params, DEFAULT_PROMPTS, DEFAULT_ARRIVALS)
    run = engine_trace.run_engine(scenario)
    return {
        "trace": run.trace,
        "scenario": engine_trace.scenario_of(run),
        "texts": run.texts,
        "tokenText": {str(t): text for t, text in run.token_text.items()},
    }


# -- the Python side of the logic test ------------------------------------------------------------

# The rules of logic.js for requests given by lengths and for static batching (its
# lengthRequest and staticBatching), so that both sides run the same requests.
TOKEN_STRIDE = 4096
WHEN_IDLE = 10**9


def length_request(seq_id: int, prompt_length: int, output_length: int, arrival: int = 0) -> dict:
    """A request known by its lengths: token ids no other request uses, never 0 (EOS)."""
    first = seq_id * TOKEN_STRIDE + 1
    return {"seq_id": seq_id, "prompt_token_ids": list(range(first, first + prompt_length)),
            "max_tokens": output_length, "ignore_eos": True, "stop_token_ids": [],
            "arrival": arrival,
            "completion": list(range(first + prompt_length,
                                     first + prompt_length + output_length))}


def prepared(scenario: dict) -> dict:
    """Requests as token ids; static batching as arrivals: group g of ``max_num_seqs``
    requests arrives at step g x WHEN_IDLE, so it joins only once the engine is idle."""
    requests = [r if "prompt_token_ids" in r else
                length_request(r["seq_id"], r["prompt_length"], r["output_length"], r["arrival"])
                for r in scenario["requests"]]
    if scenario.get("batching") == "static":
        size = scenario["config"]["max_num_seqs"]
        requests = [{**r, "arrival": i // size * WHEN_IDLE} for i, r in enumerate(requests)]
    return {**scenario, "requests": requests}


def replay(scenario: dict) -> list[dict]:
    """The scenario through the engine's Scheduler and TraceRecorder: the trace's steps."""
    from nanovllm.config import Config
    from nanovllm.engine.scheduler import Scheduler
    from nanovllm.engine.sequence import Sequence
    from nanovllm.engine.trace import TraceRecorder
    from nanovllm.sampling_params import SamplingParams

    scenario = prepared(scenario)
    settings = dict(scenario["config"])
    eos_token_id = settings.pop("eos_token_id")
    scheduler = Scheduler(Config(**settings), eos_token_id)
    recorder = TraceRecorder(scheduler)
    completion = {r["seq_id"]: r["completion"] for r in scenario["requests"]}
    pending = sorted(scenario["requests"], key=lambda r: (r["arrival"], r["seq_id"]))
    while pending or not scheduler.is_finished():
        now = len(recorder.steps)
        if scheduler.is_finished():
            now = max(now, pending[0]["arrival"])
        while pending and pending[0]["arrival"] <= now:
            r = pending.pop(0)
            params = SamplingParams(max_tokens=r["max_tokens"], ignore_eos=r["ignore_eos"],
                                    stop_token_ids=r["stop_token_ids"])
            scheduler.add(Sequence(r["prompt_token_ids"], params, seq_id=r["seq_id"]))
        batch = scheduler.schedule()
        if not batch.seqs:
            raise RuntimeError("the scheduler found nothing to run although requests remain")
        sampled = [completion[seq.seq_id][seq.num_completion_tokens]
                   for seq, sample in zip(batch.seqs, batch.do_sample, strict=True) if sample]
        scheduler.postprocess(batch, sampled)
        recorder.record_step(batch, sampled)
    return recorder.steps


def scenarios(seed: int, count: int) -> list[dict]:
    """Random scenarios: small pools (preemption), small budgets (chunks), shared prefixes
    (cache hits), stop and end-of-sequence tokens, late arrivals, both switches both ways."""
    rng = random.Random(seed)
    return [_scenario(rng) for _ in range(count)]


def _scenario(rng: random.Random) -> dict:
    block_size = rng.choice([1, 2, 4, 8])
    max_model_len = rng.randint(8, 48)
    chunked = rng.random() < 0.7
    budget = rng.randint(1, 40) if chunked else rng.randint(max_model_len, max_model_len + 16)
    prefixes = [[rng.randint(1, 6) for _ in range(rng.randint(1, 12))] for _ in range(3)]
    requests, need = [], 1
    for seq_id in range(rng.randint(1, 8)):
        prompt = list(rng.choice(prefixes)) if rng.random() < 0.6 else []
        prompt += [rng.randint(1, 6) for _ in range(rng.randint(0, 10))]
        prompt = (prompt or [rng.randint(1, 6)])[: max_model_len - 1]
        max_tokens = rng.randint(1, 16)
        requests.append({
            "seq_id": seq_id, "prompt_token_ids": prompt, "max_tokens": max_tokens,
            "ignore_eos": rng.random() < 0.5,
            "stop_token_ids": [7] if rng.random() < 0.3 else [],
            "arrival": rng.choice([0, 0, 0, rng.randint(0, 12)]),
            # token 0 is end-of-sequence and 7 a stop token for some: both end requests early
            "completion": [rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8]) for _ in range(max_tokens)],
        })
        kv_tokens = min(len(prompt) + max_tokens, max_model_len) - 1
        need = max(need, -(-kv_tokens // block_size))
    config = {"block_size": block_size, "num_kvcache_blocks": need + rng.randint(0, 6),
              "max_num_seqs": rng.randint(1, 6), "max_num_batched_tokens": budget,
              "max_model_len": max_model_len, "enable_prefix_caching": rng.random() < 0.7,
              "enable_chunked_prefill": chunked, "eos_token_id": 0}
    return {"config": config, "requests": requests}


def coverage(all_states: list[list[dict]]) -> dict[str, bool]:
    steps = [step for states in all_states for step in states]
    reasons = {f["finish_reason"] for step in steps for f in step["finished"]}
    return {
        "a preemption": any(step["batch"]["preempted_seq_ids"] for step in steps),
        "a prompt computed in chunks": any(
            p and not s for step in steps
            for p, s in zip(step["batch"]["is_prefill"], step["batch"]["do_sample"], strict=True)),
        "a prefix-cache hit": any(s["num_cached_tokens"] for step in steps for s in step["seqs"]),
        "a request ended by a stop or end-of-sequence token": "stop" in reasons,
        "a request ended by its length": "length" in reasons,
        "a request waiting while others run": any(
            {"waiting", "running"} <= {s["status"] for s in step["seqs"]} for step in steps),
    }


# -- the static form ------------------------------------------------------------------------------

def _text(token_text: dict, tokens: list[int]) -> str:
    """The tokens' text, a line break shown as ↵ (the tables have no room for it)."""
    return "".join(token_text[str(t)] for t in tokens).replace("\n", "↵")


def step_rows(trace: dict) -> list[list[str]]:
    """One row per step: what the batch computed, what ended, who waits, the block tables."""
    rows, generated, running = [], {}, set()
    for step in trace["steps"]:
        batch, work = step["batch"], []
        cached = {s["seq_id"]: s["num_cached_tokens"] for s in step["seqs"]}
        for seq_id, n, prefill, sample in zip(batch["seq_ids"], batch["num_new_tokens"],
                                              batch["is_prefill"], batch["do_sample"],
                                              strict=True):
            name = request_name(seq_id)
            notes = [] if sample else ["chunk"]
            if seq_id not in running and cached.get(seq_id):  # admitted now, with cache hits
                notes.append(f"{cached[seq_id]} cached")
            if not prefill:
                work.append(f"{name} decode" + (f" ({', '.join(notes)})" if notes else ""))
            else:
                kind = "recompute" if generated.get(seq_id) else "prompt"
                work.append(f"{name} {kind} {n}" + (f" ({', '.join(notes)})" if notes else ""))
            if sample:
                generated[seq_id] = generated.get(seq_id, 0) + 1
        events = [f"{request_name(i)} preempted" for i in batch["preempted_seq_ids"]]
        events += [f"{request_name(f['seq_id'])} ends ({f['finish_reason']})"
                   for f in step["finished"]]
        waiting = [request_name(s["seq_id"]) for s in step["seqs"] if s["status"] == "waiting"]
        tables = [f"{request_name(s['seq_id'])}: {' '.join(map(str, s['block_table']))}"
                  for s in step["seqs"] if s["status"] == "running"]
        running = {s["seq_id"] for s in step["seqs"] if s["status"] == "running"}
        rows.append([str(step["step"] + 1), ", ".join(work), "; ".join(events) or "-",
                     " ".join(waiting) or "-", "; ".join(tables) or "-",
                     str(len(step["pool"]["free_block_ids"]))])
    return rows


def request_rows(payload: dict) -> list[list[str]]:
    """One row per request: its prompt, arrival, output text and how it ended."""
    trace, token_text = payload["trace"], payload["tokenText"]
    ended = {f["seq_id"]: (step["step"] + 1, f["finish_reason"])
             for step in trace["steps"] for f in step["finished"]}
    rows = []
    for r in payload["scenario"]["requests"]:
        i = r["seq_id"]
        text = payload["texts"][i]
        prompt = text.replace("\n", "↵") if text is not None else \
            f"({len(r['prompt_token_ids'])} tokens)"
        step, reason = ended[i]
        rows.append([request_name(i), prompt, str(len(r["prompt_token_ids"])),
                     str(r["arrival"] + 1), _text(token_text, r["completion"]),
                     f"step {step} ({reason})"])
    return rows


def settings_sentence(config: dict) -> str:
    return (f"{config['num_kvcache_blocks']} blocks of {config['block_size']} tokens, a budget "
            f"of {config['max_num_batched_tokens']} tokens and at most "
            f"{config['max_num_seqs']} sequences a step, prefix caching "
            f"{'on' if config['enable_prefix_caching'] else 'off'}, chunked prefill "
            f"{'on' if config['enable_chunked_prefill'] else 'off'}")


def static_form(params: dict, payload: dict) -> list[nodes.Node]:
    """The engine's run as two tables: the requests, then every step."""
    trace = payload["trace"]
    caption = printed.caption(
        f"A run of the engine on the bundled model, made when this book was built: "
        f"{settings_sentence(trace['config'])}. Steps are numbered from 1; a request arrives "
        "before the step named.")
    requests = printed.table([10, 29, 11, 10, 24, 16],
                             ["Request", "Prompt", "Tokens", "Arrives", "Output", "Ends"],
                             request_rows(payload), ["nb-sr-requests"], colwidths_given=True)
    steps = printed.table([7, 30, 19, 11, 25, 8],
                          ["Step", "Computed in the step", "Events", "Waiting",
                           "Block tables after", "Free"], step_rows(trace), ["nb-sr-steps"],
                          colwidths_given=True)
    return [caption, requests, steps]


WIDGET = Widget(
    name="scheduler-replay",
    title="Scheduler replay",
    view="sim/scheduler-replay/view.js",
    logic="sim/scheduler-replay/logic.js",
    params=PARAMS,
    data=data,
    static_form=static_form,
    scenarios=scenarios,
    replay=replay,
    coverage=coverage,
    css=("sim/scheduler-replay/style.css",),
    engine_modules=("nanovllm.engine.llm_engine",),
    engine_files=("nanovllm/data/**/*",),
)
