"""The scheduling trace: exact schema, deterministic output, and faithful replay."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from nanovllm import Config, SamplingParams
from nanovllm.engine.scheduler import Scheduler
from nanovllm.engine.sequence import Sequence
from nanovllm.engine.trace import SCHEMA, TraceRecorder
from tests.engine.fake_model import EOS, FakeModel, replay, run
from tests.engine.test_random_workloads import Workload, workloads


def small_run() -> TraceRecorder:
    config = Config(max_num_batched_tokens=4, max_model_len=16, block_size=2,
                    num_kvcache_blocks=4)
    s = Scheduler(config, eos_token_id=0)
    recorder = TraceRecorder(s)
    s.add(Sequence([1, 2, 3], SamplingParams(max_tokens=2), seq_id=0))
    s.add(Sequence([1, 2, 5], SamplingParams(max_tokens=1, stop_token_ids=[9]), seq_id=1))
    while not s.is_finished():
        batch = s.schedule()
        sampled = [7] * sum(batch.do_sample)
        s.postprocess(batch, sampled)
        recorder.record_step(batch, sampled)
    return recorder


def test_trace_of_a_small_run_is_exactly_this():
    trace = small_run().to_dict()
    assert trace["schema"] == SCHEMA == "nanovllm.trace/1"
    assert trace["config"] == {
        "block_size": 2, "num_kvcache_blocks": 4, "max_num_seqs": 256,
        "max_num_batched_tokens": 4, "max_model_len": 16, "enable_prefix_caching": True,
        "enable_chunked_prefill": True, "eos_token_id": 0}
    assert trace["steps"] == [
        {"step": 0,
         "added": [{"seq_id": 0, "prompt_token_ids": [1, 2, 3], "max_tokens": 2,
                    "ignore_eos": False, "stop_token_ids": []},
                   {"seq_id": 1, "prompt_token_ids": [1, 2, 5], "max_tokens": 1,
                    "ignore_eos": False, "stop_token_ids": [9]}],
         # Sequence 1 reuses block 0 = [1, 2], which sequence 0 computes in this same step.
         "batch": {"seq_ids": [0, 1], "num_new_tokens": [3, 1], "is_prefill": [True, True],
                   "do_sample": [True, True], "preempted_seq_ids": []},
         "sampled_token_ids": [7, 7],
         "finished": [{"seq_id": 1, "finish_reason": "length"}],
         "seqs": [{"seq_id": 0, "status": "running", "num_tokens": 4, "num_computed_tokens": 3,
                   "num_cached_tokens": 0, "block_table": [0, 1]}],
         "pool": {"free_block_ids": [2, 3], "ref_counts": [1, 1, 0, 0], "cached_block_ids": [0],
                  "num_cached_keys": 1}},
        {"step": 1,
         "added": [],
         "batch": {"seq_ids": [0], "num_new_tokens": [1], "is_prefill": [False],
                   "do_sample": [True], "preempted_seq_ids": []},
         "sampled_token_ids": [7],
         "finished": [{"seq_id": 0, "finish_reason": "length"}],
         "seqs": [],
         # Freed last block first: cached blocks queue at the back, block 0 (the prefix) last.
         "pool": {"free_block_ids": [2, 3, 1, 0], "ref_counts": [0, 0, 0, 0],
                  "cached_block_ids": [0, 1], "num_cached_keys": 2}},
    ]
    assert json.loads(small_run().to_json()) == trace


def record(w: Workload) -> str:
    """Run a workload on the smallest pool (so it preempts) and return its trace as JSON."""
    bs = w.block_size
    config = Config(max_num_batched_tokens=w.max_num_batched_tokens, max_num_seqs=w.max_num_seqs,
                    max_model_len=w.max_model_len, block_size=bs, num_kvcache_blocks=w.min_pool())
    s = Scheduler(config, eos_token_id=EOS)
    recorder = TraceRecorder(s)
    arrivals: dict[int, list[Sequence]] = {}
    for i, r in enumerate(w.requests):
        arrivals.setdefault(r.arrival, []).append(Sequence(list(r.prompt), r.params, seq_id=i))
    run(s, FakeModel(w.min_pool(), bs), arrivals, after_step=recorder.record_step)
    return recorder.to_json()


@settings(max_examples=40, deadline=None)
@given(workloads())
def test_traces_are_deterministic_and_replay_exactly(w: Workload):
    text = record(w)
    assert record(w) == text  # no clocks, no ordering surprises
    trace = json.loads(text)
    assert replay(trace) == trace  # the trace alone is enough to reproduce the run
    added = [r["seq_id"] for step in trace["steps"] for r in step["added"]]
    assert sorted(added) == list(range(len(w.requests)))


def test_replay_notices_a_trace_that_no_longer_matches():
    trace = small_run().to_dict()
    trace["steps"][0]["pool"]["free_block_ids"] = [3, 2]
    assert replay(trace) != trace
    trace = small_run().to_dict()
    trace["steps"][0]["sampled_token_ids"] = [0, 7]  # sequence 0 samples EOS: nothing is left
    with pytest.raises(ValueError, match="sampled_token_ids has 1 ids; the batch samples 0"):
        replay(trace)  # for step 1
