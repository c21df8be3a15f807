"""The benchmark workloads: deterministic lists of requests, generated from a seed.

Every workload is plain data (token ids, output lengths, arrival steps), so the same
workload can be fed to this engine and to Hugging Face ``transformers``, and a record
can say exactly what was run. Prompts are random token ids: speed does not depend on
what the tokens say, and random ids defeat the prefix cache unless a workload shares a
prefix on purpose.

* (a) ``throughput``: nano-vLLM's benchmark. 256 requests; with ``random.Random(seed)``
  draw, for each request in turn, a prompt length uniform in [100, 1024] and then that
  many token ids uniform in [0, 10000]; then, for each request, an output length
  uniform in [100, 1024]. With seed 0 that is 142,827 prompt and 133,966 output tokens,
  the totals nano-vLLM's README reports for its run of this workload.
* (b) ``single``: one prompt of 512 tokens, 256 output tokens: decode latency (TPOT).
* (c) ``shared_prefix``: many requests that start with one long system prompt and end
  with a short question of their own: what the prefix cache saves.
* (d) ``mixed``: short requests decoding while long prompts arrive every few steps:
  how much a long prefill delays the tokens of requests already running, which chunked
  prefill bounds.
* (e) ``batch``: ``batch_size`` identical-shape requests at once; a sweep over batch
  sizes gives the throughput / latency curve.

Arrival is counted in engine steps, not seconds ("request i is added before step s"),
so a workload schedules identically on any hardware; the harness records wall-clock
times. Every request uses ``ignore_eos`` so that output lengths are exactly as drawn.
"""

import random
from dataclasses import dataclass, field

from nanovllm.sampling_params import SamplingParams


@dataclass(frozen=True)
class Request:
    prompt_token_ids: list[int]
    max_tokens: int
    arrival_step: int = 0  # added to the engine just before this step


@dataclass
class Workload:
    name: str
    description: str
    requests: list[Request]
    parameters: dict  # the arguments that generated it, for the record
    temperature: float = 0.6
    engine_settings: dict = field(default_factory=dict)  # Config fields it needs

    def sampling_params(self, request: Request) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, max_tokens=request.max_tokens,
                              ignore_eos=True)

    @property
    def num_prompt_tokens(self) -> int:
        return sum(len(r.prompt_token_ids) for r in self.requests)

    @property
    def num_output_tokens(self) -> int:
        return sum(r.max_tokens for r in self.requests)

    def subset(self, count: int) -> "Workload":
        """The first ``count`` requests, as a workload of its own."""
        return Workload(f"{self.name}[:{count}]", f"the first {count} requests of: "
                        f"{self.description}", self.requests[:count],
                        {**self.parameters, "subset": count}, self.temperature,
                        dict(self.engine_settings))

    def summary(self) -> dict:
        return {"name": self.name, "description": self.description,
                "parameters": self.parameters, "num_requests": len(self.requests),
                "prompt_tokens": self.num_prompt_tokens, "output_tokens": self.num_output_tokens,
                "temperature": self.temperature, "ignore_eos": True,
                "engine_settings": self.engine_settings}


def random_ids(rng: random.Random, count: int, vocab_size: int) -> list[int]:
    top = min(10000, vocab_size - 1)
    return [rng.randint(0, top) for _ in range(count)]


def throughput(num_requests: int = 256, min_len: int = 100, max_len: int = 1024, seed: int = 0,
               vocab_size: int = 151936, max_model_len: int = 4096) -> Workload:
    rng = random.Random(seed)
    prompts = [random_ids(rng, rng.randint(min_len, max_len), vocab_size)
               for _ in range(num_requests)]
    outputs = [rng.randint(min_len, max_len) for _ in range(num_requests)]
    return Workload("a", "nano-vLLM's benchmark: random prompts and output lengths, each "
                    f"uniform in [{min_len}, {max_len}]",
                    [Request(p, o) for p, o in zip(prompts, outputs, strict=True)],
                    dict(num_requests=num_requests, min_len=min_len, max_len=max_len,
                         seed=seed), engine_settings=dict(max_model_len=max_model_len))


def single(prompt_len: int = 512, output_len: int = 256, seed: int = 0,
           vocab_size: int = 151936) -> Workload:
    rng = random.Random(seed)
    return Workload("b", f"one request: {prompt_len} prompt tokens, {output_len} output tokens",
                    [Request(random_ids(rng, prompt_len, vocab_size), output_len)],
                    dict(prompt_len=prompt_len, output_len=output_len, seed=seed))


def shared_prefix(num_requests: int = 128, prefix_len: int = 2048, min_suffix: int = 32,
                  max_suffix: int = 128, output_len: int = 64, seed: int = 0,
                  vocab_size: int = 151936) -> Workload:
    rng = random.Random(seed)
    system = random_ids(rng, prefix_len, vocab_size)
    requests = [Request(system + random_ids(rng, rng.randint(min_suffix, max_suffix),
                                            vocab_size), output_len)
                for _ in range(num_requests)]
    return Workload("c", f"{num_requests} requests sharing a {prefix_len}-token system prompt, "
                    f"each with its own {min_suffix}-{max_suffix}-token question",
                    requests, dict(num_requests=num_requests, prefix_len=prefix_len,
                                   min_suffix=min_suffix, max_suffix=max_suffix,
                                   output_len=output_len, seed=seed))


def mixed(num_short: int = 64, short_prompt: int = 256, short_output: int = 512,
          num_long: int = 16, long_prompt: int = 3584, long_output: int = 16,
          first_arrival: int = 32, every: int = 24, seed: int = 0,
          vocab_size: int = 151936, max_model_len: int = 4096) -> Workload:
    rng = random.Random(seed)
    short = [Request(random_ids(rng, short_prompt, vocab_size), short_output)
             for _ in range(num_short)]
    long = [Request(random_ids(rng, long_prompt, vocab_size), long_output,
                    arrival_step=first_arrival + i * every) for i in range(num_long)]
    return Workload("d", f"{num_short} short requests ({short_prompt} + {short_output} tokens) "
                    f"decoding while {num_long} prompts of {long_prompt} tokens arrive, one "
                    f"every {every} steps from step {first_arrival}", short + long,
                    dict(num_short=num_short, short_prompt=short_prompt,
                         short_output=short_output, num_long=num_long, long_prompt=long_prompt,
                         long_output=long_output, first_arrival=first_arrival, every=every,
                         seed=seed), engine_settings=dict(max_model_len=max_model_len))


def batch(batch_size: int = 64, prompt_len: int = 512, output_len: int = 128, seed: int = 0,
          vocab_size: int = 151936) -> Workload:
    rng = random.Random(seed)
    return Workload("e", f"{batch_size} requests at once, {prompt_len} prompt + {output_len} "
                    f"output tokens each",
                    [Request(random_ids(rng, prompt_len, vocab_size), output_len)
                     for _ in range(batch_size)],
                    dict(batch_size=batch_size, prompt_len=prompt_len, output_len=output_len,
                         seed=seed), engine_settings=dict(max_num_seqs=max(batch_size, 1)))


BUILDERS = {"a": throughput, "b": single, "c": shared_prefix, "d": mixed, "e": batch}
SWEEP_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# Sizes that run in seconds on a laptop CPU with the bundled tiny model (--small).
SMALL = {
    "a": dict(num_requests=8, min_len=16, max_len=64, max_model_len=256),
    "b": dict(prompt_len=32, output_len=16),
    "c": dict(num_requests=8, prefix_len=64, min_suffix=4, max_suffix=12, output_len=8),
    "d": dict(num_short=4, short_prompt=16, short_output=32, num_long=2, long_prompt=96,
              long_output=4, first_arrival=4, every=6, max_model_len=256),
    "e": dict(prompt_len=32, output_len=8),
}
SMALL_SWEEP_BATCH_SIZES = (1, 4)


def build(name: str, vocab_size: int, small: bool = False, **overrides) -> Workload:
    """Workload ``name`` ("a" to "e") with its defaults (or SMALL ones) and any overrides."""
    if name not in BUILDERS:
        raise ValueError(f"workload={name!r} is invalid: one of {sorted(BUILDERS)}")
    arguments = {**(SMALL[name] if small else {}), **overrides, "vocab_size": vocab_size}
    return BUILDERS[name](**arguments)
