"""The step's inputs: the plain ``prepare`` on a worked example, and ``FastInputs`` against it.

``FastInputs`` has a decode-only path (token ids from ``last_token_id``) and keeps each
sequence's block table as a cached array. Both must give exactly what the plain rule gives,
every step of batches from the real scheduler: through admissions, prefix-cache hits,
chunked prefill, preemptions (a new block table for the same sequence) and finishing.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import fields, replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nanovllm import Config, SamplingParams
from nanovllm.engine.fast_inputs import FastInputs
from nanovllm.engine.model_runner import prepare
from nanovllm.engine.scheduler import ScheduledBatch, Scheduler
from nanovllm.engine.sequence import Sequence
from nanovllm.layers.attention import StepInputs


def as_lists(inputs: StepInputs) -> dict:
    return {f.name: (value.tolist() if hasattr(value, "tolist") else value)
            for f in fields(inputs) if (value := getattr(inputs, f.name)) is not None}


def test_prepare_on_a_worked_example():
    """Blocks of 4. Sequence a: a 6-token prompt, its first 4 tokens from the prefix cache
    (blocks 7 and 2). Sequence b: decoding its 10th token (blocks 5, 1, 3)."""
    a = Sequence([11, 12, 13, 14, 15, 16], seq_id=0)
    a.num_computed_tokens, a.block_table = 4, [7, 2]
    b = Sequence(list(range(30, 40)), seq_id=1)
    b.num_computed_tokens, b.block_table = 9, [5, 1, 3]
    batch = ScheduledBatch([a, b], [2, 1], [True, False], [True, True])
    assert as_lists(prepare(batch, 4)) == {
        "input_ids": [15, 16, 39], "positions": [4, 5, 9],
        # block_table[pos // 4] * 4 + pos % 4: a's positions 4, 5 in block 2; b's 9 in block 3
        "slot_mapping": [2 * 4 + 0, 2 * 4 + 1, 3 * 4 + 1],
        "cu_seqlens_q": [0, 2, 3], "context_lens": [6, 10],
        "block_tables": [[7, 2, -1], [5, 1, 3]], "sample_rows": [1, 2], "max_query_len": 2}


@pytest.mark.parametrize("seed", range(6))
def test_fast_inputs_are_the_plain_inputs_every_step(seed):
    rng = random.Random(seed)
    block_size = rng.choice([1, 2, 4, 16])
    chunked = rng.random() < 0.7
    max_blocks = 128 // block_size  # a pool this small must preempt now and then
    config = Config(block_size=block_size, max_model_len=128,
                    num_kvcache_blocks=max_blocks + rng.randint(0, 2 * max_blocks),
                    max_num_seqs=rng.randint(2, 12), enable_prefix_caching=rng.random() < 0.7,
                    max_num_batched_tokens=rng.choice([8, 32, 256]) if chunked else 256,
                    enable_chunked_prefill=chunked)
    scheduler, fast = Scheduler(config, eos_token_id=None), FastInputs(block_size)
    prefixes = [[rng.randrange(50) for _ in range(rng.randint(0, 40))] for _ in range(3)]
    pending = []
    for _ in range(30):
        prompt = rng.choice(prefixes) + [rng.randrange(50) for _ in range(rng.randint(1, 30))]
        params = SamplingParams(max_tokens=rng.randint(1, 60), ignore_eos=True)
        pending.append(Sequence(prompt[: config.max_model_len - 1], params))
    seen = {"decode_only": 0, "mixed": 0, "preempted": 0}
    while pending or not scheduler.is_finished():
        for _ in range(rng.randint(0, 3)):
            if pending:
                scheduler.add(pending.pop())
        batch = scheduler.schedule()
        seen["preempted"] += bool(batch.preempted_seq_ids)
        if batch.seqs:
            seen["decode_only" if not any(batch.is_prefill) else "mixed"] += 1
            expected = as_lists(prepare(batch, block_size))
            assert as_lists(fast.prepare(batch)) == expected
            # The general path, taken for every sequence, agrees with the decode-only path.
            general = replace(batch, is_prefill=[True] * len(batch))
            assert as_lists(fast.prepare(general)) == expected
        scheduler.postprocess(batch, [rng.randrange(50) for _ in range(sum(batch.do_sample))])
    assert seen["decode_only"] and seen["mixed"]


def test_the_fast_inputs_follow_preemptions_and_prefix_cache_hits():
    """The random workloads above are only worth something if they reach these cases."""
    config = Config(block_size=4, num_kvcache_blocks=12, max_num_seqs=4,
                    max_num_batched_tokens=32, max_model_len=64)
    scheduler, fast = Scheduler(config, eos_token_id=None), FastInputs(4)
    prefix = list(range(1, 13))
    for i in range(4):
        scheduler.add(Sequence(prefix + [20 + i], SamplingParams(max_tokens=20, ignore_eos=True)))
    preempted = cached = 0
    while not scheduler.is_finished():
        batch = scheduler.schedule()
        preempted += len(batch.preempted_seq_ids)
        cached += sum(seq.num_cached_tokens > 0 for seq in batch.seqs)
        assert as_lists(fast.prepare(batch)) == as_lists(prepare(batch, 4))
        scheduler.postprocess(batch, [5] * sum(batch.do_sample))
    assert preempted and cached


def test_a_cached_block_table_array_follows_a_new_or_longer_table():
    fast, seq = FastInputs(16), Sequence([1, 2, 3])
    seq.block_table = [4, 5]
    first = fast.table(seq)
    assert first.tolist() == [4, 5] and fast.table(seq) is first  # reused
    seq.block_table.append(6)
    assert fast.table(seq).tolist() == [4, 5, 6]
    seq.block_table = [7, 8, 9]  # same length, new list (as after a preemption)
    assert fast.table(seq).tolist() == [7, 8, 9] and fast.table(seq).dtype == np.int32
    del seq  # a finished sequence takes its cached table with it
    assert len(fast.tables) == 0


def test_a_decode_steps_inputs_pickle_small_for_tensor_parallel_workers():
    """What the driver sends each worker every step (tp_runner.py): 256 sequences at 1,000
    tokens of context in 16-token blocks is six int32 numbers a sequence and 63 block ids,
    about 71 KB, however long the text."""
    seqs = []
    for i in range(256):
        seq = Sequence(list(range(1000)), seq_id=i)
        seq.num_computed_tokens, seq.block_table = 999, list(range(63 * i, 63 * i + 63))
        seqs.append(seq)
    inputs = FastInputs(16).prepare(ScheduledBatch(seqs, [1] * 256, [False] * 256, [True] * 256))
    assert inputs.block_tables.dtype == np.int32 and inputs.block_tables.shape == (256, 63)
    size = len(pickle.dumps(inputs, protocol=pickle.HIGHEST_PROTOCOL))
    payload = 5 * 256 * 4 + 257 * 4 + 256 * 63 * 4  # five arrays of 256, cu_seqlens, tables
    assert payload == 70_660 and payload <= size < payload + 2_000
    again = pickle.loads(pickle.dumps(inputs, protocol=pickle.HIGHEST_PROTOCOL))
    assert np.array_equal(again.block_tables, inputs.block_tables) and again.decode_only


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_pinned_copy_gives_every_array_and_reuses_its_buffer():
    fast, device = FastInputs(4), torch.device("cuda")
    a = Sequence(list(range(9)), seq_id=0)
    a.block_table = [3, 1, 2]
    for step in range(3):  # the same buffer, refilled: each copy must see its own values
        a.num_computed_tokens = step
        inputs = fast.prepare(ScheduledBatch([a], [9 - step], [True], [True]))
        on_device = fast.to_device(inputs, device)
        assert as_lists(on_device) == as_lists(inputs)
        buffer = fast.pinned
    assert fast.pinned is buffer


def test_graphs_cover_only_steps_whose_every_row_is_sampled():
    """A one-token chunk of a longer prompt has a query of one token, like a decode, but
    samples nothing: such a step runs eagerly (a graph samples every row)."""
    from nanovllm.engine.cuda_graph import DecodeGraphs

    static = SimpleNamespace(on_device=SimpleNamespace(block_tables=torch.zeros(4, 8)))
    graphs = SimpleNamespace(sizes=[1, 2, 4], static=static)

    def step(rows, sampled, width=3, query=1):
        ids = np.arange(rows)
        return StepInputs(ids, ids, ids, np.arange(rows + 1), ids + 1,
                          np.zeros((rows, width), dtype=np.int32), np.arange(sampled),
                          max_query_len=query)

    assert DecodeGraphs.covers(graphs, step(3, 3))
    assert not DecodeGraphs.covers(graphs, step(3, 2))  # a middle chunk of one token
    assert not DecodeGraphs.covers(graphs, step(5, 5))  # more rows than the largest graph
    assert not DecodeGraphs.covers(graphs, step(3, 3, width=9))  # a longer block table
    assert not DecodeGraphs.covers(graphs, step(2, 2, query=4))  # a prefill


def test_a_cpu_decode_step_runs_the_plain_path_only():
    """scripts/data_plane_path.py traces one eager decode step on the CPU: it starts at the
    engine's step, reaches the attention layer, and runs no kernel file nor a speed-up module
    (those are the GPU's)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).parents[2]
    result = subprocess.run([sys.executable, str(repo / "scripts" / "data_plane_path.py")],
                            capture_output=True, text=True, timeout=300, check=True, cwd=repo)
    files = [line.split()[1] for line in result.stdout.splitlines() if line[:2].strip().isdigit()]
    assert files[0] == "nanovllm/engine/llm_engine.py"
    assert "nanovllm/layers/attention.py" in files and "nanovllm/models/qwen3.py" in files
    assert not [f for f in files if f.startswith("nanovllm/kernels/")
                or f.endswith(("fast_inputs.py", "cuda_graph.py"))]
    assert "lines:" in result.stdout.splitlines()[-1]
