"""A widget's page data from the real engine: a scenario given as directive options, run on the
CPU when the book is built, recorded step by step with the engine's trace recorder.

The options (every trace widget takes them; a widget may change their defaults)::

    ```{simulator} scheduler-replay
    :prompts: ["ROMEO:", "JULIET: O Romeo, Romeo!"]
    :max-tokens: 6, 10
    :arrivals: 0, 3
    :blocks: 10
    :block-size: 4
    :max-batched-tokens: 16
    :prefix-caching: on
    ```

``:prompts:`` (a JSON list of texts, tokenized by the bundled model's tokenizer) or
``:prompt-lengths:`` (lengths in tokens; the tokens are drawn from a fixed seed) give the
requests; ``:max-tokens:`` and ``:arrivals:`` take one value per request (``:max-tokens:``
also one value for all). ``:arrivals:`` numbers the step before which a request joins;
when the engine falls idle before the next arrival, that request joins at once, so a run
never records an empty step. The engine options are ``Config``'s fields under the names the
book uses: ``:blocks:`` is ``num_kvcache_blocks``, ``:max-batched-tokens:`` is
``max_num_batched_tokens``, and so on. Decoding is greedy unless ``:temperature:`` says
otherwise (then each request has its own fixed seed), so a page shows the same run on every
build.

A scenario the engine refuses is a build error that names the option: the engine's own
message (``Config``'s checks, the scheduler's refusal of a request that could never fit) with
the option's name in front of it.

The run is an ``LLMEngine`` on the bundled model with ``start_trace()``; the trace
(``nanovllm.trace/1``, see ``nanovllm/engine/trace.py``) is kept with its sequences numbered
0, 1, ... in the order they were added, so the page does not depend on how many sequences the
build made before. ``scenario_of(run)`` turns the run into the input of a JavaScript replay:
the requests, their arrivals, and the tokens each one generated.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from . import Param, ParamError

MAX_STEPS = 200  # a longer run makes a page no reader steps through (and a slow build)
MAX_REQUESTS = 26  # named A to Z

# Config field -> option name, for the engine's messages.
CONFIG_OPTIONS = {
    "num_kvcache_blocks": "blocks",
    "block_size": "block-size",
    "max_num_seqs": "max-num-seqs",
    "max_num_batched_tokens": "max-batched-tokens",
    "max_model_len": "max-model-len",
    "enable_prefix_caching": "prefix-caching",
    "enable_chunked_prefill": "chunked-prefill",
}


def scenario_params(**defaults) -> dict[str, Param]:
    """The scenario options with their limits; ``defaults`` (by option name) replace ours."""
    params = {
        "prompts": Param(str, (), help="the prompts, a JSON list of texts; none: the "
                         "widget's own", many=True, max_items=MAX_REQUESTS),
        "prompt-lengths": Param(int, (), 1, 1024, "prompt lengths in tokens, instead of "
                                ":prompts:", many=True, max_items=MAX_REQUESTS),
        "max-tokens": Param(int, (8,), 1, 512, "tokens to generate, one value or one per "
                            "request", many=True, max_items=MAX_REQUESTS),
        "arrivals": Param(int, (), 0, MAX_STEPS, "the step each request arrives before, one "
                          "per request; none: all before the first", many=True,
                          max_items=MAX_REQUESTS),
        "ignore-eos": Param(bool, True, help="generate max-tokens even past end-of-sequence"),
        "temperature": Param(float, 0.0, 0, 10, "sampling temperature; 0 is greedy"),
        "blocks": Param(int, 16, 1, 4096, "KV blocks in the pool"),
        "block-size": Param(int, 4, 1, 256, "tokens per block, a power of two"),
        "max-num-seqs": Param(int, 8, 1, 256, "sequences in one step"),
        "max-batched-tokens": Param(int, 16, 1, 16384, "token budget of a step"),
        "max-model-len": Param(int, 128, 2, 2048, "prompt plus output, at most"),
        "prefix-caching": Param(bool, True, help="prefix caching on or off"),
        "chunked-prefill": Param(bool, True, help="chunked prefill on or off"),
    }
    for name, value in defaults.items():
        params[name] = dataclasses.replace(params[name], default=value)
    return params


@dataclass(frozen=True)
class Scenario:
    """Requests and engine settings, checked against each other."""

    prompts: tuple[str, ...]  # texts, or () when the prompts are given by length
    prompt_lengths: tuple[int, ...]
    max_tokens: tuple[int, ...]  # one per request
    arrivals: tuple[int, ...]  # one per request
    ignore_eos: bool
    temperature: float
    engine: dict  # Config fields

    @property
    def num_requests(self) -> int:
        return len(self.prompts or self.prompt_lengths)


def scenario_from(params: dict, default_prompts: tuple[str, ...] = (),
                  default_arrivals: tuple[int, ...] = ()) -> Scenario:
    """The scenario of a directive's options, or ParamError naming the option at fault.

    Without prompts, the widget's ``default_prompts`` run, with ``default_arrivals`` unless
    the options give arrivals.
    """
    prompts, lengths, arrivals = params["prompts"], params["prompt-lengths"], params["arrivals"]
    if prompts and lengths:
        raise ParamError(":prompts: and :prompt-lengths: both given; give the prompts as "
                         "texts or as lengths, not both")
    if not prompts and not lengths:
        prompts, arrivals = default_prompts, arrivals or default_arrivals
    count = len(prompts or lengths)
    if not count:
        raise ParamError("no requests; give :prompts: or :prompt-lengths:")
    max_tokens = params["max-tokens"]
    if len(max_tokens) == 1:
        max_tokens = max_tokens * count
    elif len(max_tokens) != count:
        raise ParamError(f":max-tokens: has {len(max_tokens)} values for {count} requests; "
                         "give one value for all of them or one per request")
    arrivals = arrivals or (0,) * count
    if len(arrivals) != count:
        raise ParamError(f":arrivals: has {len(arrivals)} value{'s' if len(arrivals) > 1 else ''}"
                         f" for {count} requests; give one per request")
    engine = {
        "num_kvcache_blocks": params["blocks"],
        "block_size": params["block-size"],
        "max_num_seqs": params["max-num-seqs"],
        "max_num_batched_tokens": params["max-batched-tokens"],
        "max_model_len": params["max-model-len"],
        "enable_prefix_caching": params["prefix-caching"],
        "enable_chunked_prefill": params["chunked-prefill"],
    }
    return Scenario(tuple(prompts), tuple(lengths), tuple(max_tokens), tuple(arrivals),
                    params["ignore-eos"], params["temperature"], engine)


def option_message(message: str) -> str:
    """An engine message about a Config field, with the option's name in front instead."""
    for field_name, option in CONFIG_OPTIONS.items():
        if message.startswith(field_name + "="):
            return f":{option}: {message[len(field_name) + 1:]}"
    return message


def request_name(index: int) -> str:
    return chr(ord("A") + index)


def length_prompt(index: int, length: int, vocab_size: int) -> list[int]:
    """The tokens of a prompt given by length: fixed per request, never special token 0."""
    rng = random.Random(f"nanobook-prompt-{index}")
    return [rng.randrange(1, vocab_size) for _ in range(length)]


@dataclass
class EngineRun:
    """What one run of the engine produced, for a widget's page data and its static form."""

    trace: dict  # nanovllm.trace/1, sequences numbered 0, 1, ... in the order added
    prompts: list[list[int]]
    texts: list[str | None]  # each prompt's text, None when given by length
    arrivals: list[int]
    token_text: dict[int, str]  # every token id of the run -> its text


def run_engine(scenario: Scenario) -> EngineRun:
    """Run the scenario in the engine on the CPU with the bundled model; ParamError if the
    engine refuses it."""
    from nanovllm.engine.llm_engine import LLMEngine
    from nanovllm.sampling_params import SamplingParams

    try:
        engine = LLMEngine(device="cpu", enforce_eager=True, seed=0, **scenario.engine)
    except ValueError as error:
        raise ParamError(option_message(str(error))) from None
    try:
        return _run(engine, scenario, SamplingParams)
    finally:
        engine.close()


def _run(engine, scenario: Scenario, sampling_params) -> EngineRun:
    vocab = engine.model_config.vocab_size
    if scenario.prompts:
        prompts = [engine.tokenize(text) for text in scenario.prompts]
    else:
        prompts = [length_prompt(i, n, vocab) for i, n in enumerate(scenario.prompt_lengths)]
    if scenario.ignore_eos:  # each request then takes max-tokens steps at least: refuse early
        max_len = engine.config.max_model_len
        longest = max(min(m, max_len - len(p)) for m, p in zip(scenario.max_tokens, prompts,
                                                                strict=True))
        if longest > MAX_STEPS:
            raise ParamError(too_long())
    recorder = engine.start_trace()
    pending = sorted(range(scenario.num_requests), key=lambda i: (scenario.arrivals[i], i))
    engine_ids: dict[int, int] = {}
    while pending or not engine.is_finished():
        now = len(recorder.steps)
        if engine.is_finished():  # idle: the next arrivals join at once
            now = max(now, scenario.arrivals[pending[0]])
        while pending and scenario.arrivals[pending[0]] <= now:
            i = pending.pop(0)
            params = sampling_params(
                temperature=scenario.temperature, max_tokens=scenario.max_tokens[i],
                ignore_eos=scenario.ignore_eos, seed=i if scenario.temperature else None)
            try:
                seq = engine.add_request(prompts[i], params)
            except ValueError as error:
                raise ParamError(refusal(i, str(error))) from None
            engine_ids[seq.seq_id] = i
        engine.step()
        if len(recorder.steps) > MAX_STEPS:
            raise ParamError(too_long())
    trace = renumber(recorder.to_dict(), engine_ids)
    used = {t for p in prompts for t in p}
    used |= {t for step in trace["steps"] for t in step["sampled_token_ids"]}
    token_text = {t: engine.tokenizer.decode([t]) for t in sorted(used)}
    texts = list(scenario.prompts) if scenario.prompts else [None] * len(prompts)
    return EngineRun(trace, prompts, texts, list(scenario.arrivals), token_text)


def too_long() -> str:
    return (f"the run takes more than {MAX_STEPS} steps; make it shorter (fewer or shorter "
            "requests, lower :max-tokens:, a larger :max-batched-tokens:)")


def refusal(index: int, message: str) -> str:
    """The engine's refusal of a request, naming the request and the options that decide."""
    reason = message.split(": ", 1)[-1]  # the engine's own numbering of sequences is left out
    if "KV blocks" in reason:
        hint = "raise :blocks: or lower :max-tokens:"
    elif "max_model_len" in reason:
        hint = "raise :max-model-len: or shorten the prompt"
    else:
        hint = "change the prompt"
    return f"request {request_name(index)} cannot run: {reason} (in the directive: {hint})"


def renumber(trace: dict, ids: dict[int, int]) -> dict:
    """The trace with every sequence id replaced by ``ids[id]``."""
    def seq(entry: dict) -> dict:
        return {**entry, "seq_id": ids[entry["seq_id"]]}

    steps = []
    for step in trace["steps"]:
        batch = step["batch"]
        steps.append({
            **step,
            "added": [seq(r) for r in step["added"]],
            "batch": {**batch, "seq_ids": [ids[i] for i in batch["seq_ids"]],
                      "preempted_seq_ids": [ids[i] for i in batch["preempted_seq_ids"]]},
            "finished": [seq(f) for f in step["finished"]],
            "seqs": [seq(s) for s in step["seqs"]],
        })
    return {**trace, "steps": steps}


def completions(trace: dict) -> dict[int, list[int]]:
    """The tokens each sequence generated, in order, read from the trace's steps."""
    out: dict[int, list[int]] = {}
    for step in trace["steps"]:
        for r in step["added"]:
            out.setdefault(r["seq_id"], [])
        batch = step["batch"]
        sampled = iter(step["sampled_token_ids"])
        for seq_id, sample in zip(batch["seq_ids"], batch["do_sample"], strict=True):
            if sample:
                out[seq_id].append(next(sampled))
    return out


def scenario_of(run: EngineRun) -> dict:
    """The run as the input of a replay: engine settings, requests with their arrivals and
    the tokens each generated. Replaying it must give back the run's trace, step by step."""
    done = completions(run.trace)
    requests = []
    for step in run.trace["steps"]:
        for r in step["added"]:
            requests.append({**r, "arrival": run.arrivals[r["seq_id"]],
                             "completion": done[r["seq_id"]]})
    requests.sort(key=lambda r: r["seq_id"])
    return {"config": run.trace["config"], "requests": requests}
