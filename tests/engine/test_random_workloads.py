"""Property-based tests: random workloads through the real Scheduler and BlockManager.

After every step the accounting invariants hold (``InvariantChecker``) and every sequence reads
back exactly its own K/V (``FakeModel``). Every request finishes with exactly the tokens it would
get alone on an ideal engine, whether prefix caching and chunked prefill are on or off, and
with a pool so small that requests must be preempted and recomputed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from nanovllm.config import Config
from nanovllm.engine.scheduler import Scheduler
from nanovllm.engine.sequence import Sequence
from nanovllm.sampling_params import SamplingParams
from tests.engine.fake_model import (
    EOS,
    VOCAB,
    FakeModel,
    InvariantChecker,
    reference_completion,
    run,
)

STATS: Counter = Counter()  # steps and preemptions over all examples, reported by the test


@dataclass(frozen=True)
class Request:
    prompt: tuple[int, ...]
    params: SamplingParams
    arrival: int  # the step before which it is added


@dataclass(frozen=True)
class Workload:
    block_size: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    extra_blocks: int
    requests: tuple[Request, ...]

    def min_pool(self) -> int:
        """The smallest pool every request fits in alone (what Scheduler.add demands)."""
        bs = self.block_size
        return max(-(-(min(len(r.prompt) + r.params.max_tokens, self.max_model_len) - 1) // bs)
                   for r in self.requests)


tokens = st.integers(0, VOCAB - 1)


@st.composite
def workloads(draw) -> Workload:
    bs = draw(st.sampled_from([1, 2, 4, 8]))
    max_model_len = draw(st.integers(4, 64))
    # A few shared prefixes, so that prompts overlap and the prefix cache has work to do.
    prefixes = [[], *draw(st.lists(st.lists(tokens, max_size=3 * bs), min_size=1, max_size=2))]
    requests = []
    for _ in range(draw(st.integers(1, 10))):
        prompt = draw(st.sampled_from(prefixes)) + draw(st.lists(tokens, max_size=12))
        prompt = prompt[: max_model_len - 1] or [draw(tokens)]
        stop = draw(st.lists(st.integers(1, VOCAB - 1), max_size=2))
        params = SamplingParams(max_tokens=draw(st.integers(1, 24)), ignore_eos=draw(st.booleans()),
                                stop_token_ids=stop)
        requests.append(Request(tuple(prompt), params, draw(st.integers(0, 6))))
    return Workload(bs, max_model_len, draw(st.integers(1, 6)), draw(st.integers(1, 24)),
                    draw(st.integers(0, 16)), tuple(requests))


def run_workload(w: Workload, caching: bool, chunked: bool, small_pool: bool) -> dict:
    num_blocks = w.min_pool() + (0 if small_pool else w.extra_blocks)
    budget = w.max_num_batched_tokens if chunked else max(w.max_num_batched_tokens,
                                                          w.max_model_len)
    config = Config(max_num_batched_tokens=budget, max_num_seqs=w.max_num_seqs,
                    max_model_len=w.max_model_len, block_size=w.block_size,
                    num_kvcache_blocks=num_blocks, enable_prefix_caching=caching,
                    enable_chunked_prefill=chunked)
    scheduler = Scheduler(config, eos_token_id=EOS)
    seqs = [Sequence(list(r.prompt), r.params, seq_id=i) for i, r in enumerate(w.requests)]
    arrivals: dict[int, list[Sequence]] = {}
    for seq, r in zip(seqs, w.requests, strict=True):
        arrivals.setdefault(r.arrival, []).append(seq)
    model = FakeModel(num_blocks, w.block_size)
    checker = InvariantChecker(scheduler, model, seqs)
    run(scheduler, model, arrivals, after_step=checker)
    STATS["steps"] += checker.steps
    STATS["preemptions"] += checker.preemptions
    return {seq.seq_id: (seq.completion_token_ids, seq.finish_reason) for seq in seqs}


SETUPS = [  # (prefix caching, chunked prefill, smallest pool)
    (True, True, False), (False, True, False), (True, False, False), (False, False, False),
    (True, True, True), (False, True, True), (True, False, True),
]


@settings(max_examples=400, deadline=None)
@given(workloads())
def check_random_workload(w: Workload) -> None:
    expected = {i: reference_completion(list(r.prompt), r.params, w.max_model_len)
                for i, r in enumerate(w.requests)}
    for r, (completion, reason) in zip(w.requests, expected.values(), strict=True):
        if reason == "length":  # exactly as many tokens as were asked for
            assert len(completion) == min(r.params.max_tokens, w.max_model_len - len(r.prompt))
    for setup in SETUPS:
        assert run_workload(w, *setup) == expected, f"setup {setup}"


def test_random_workloads_keep_invariants_and_streams():
    STATS.clear()
    check_random_workload()
    print(f"\nrandom workloads: {STATS['steps']} steps, {STATS['preemptions']} preemptions")
    assert STATS["steps"] >= 3000
    assert STATS["preemptions"] > 0  # the small pools really did force recompute
