"""prepare_model_inputs against a plain per-token reference, on batches from the real scheduler.

The function has a decode-only fast path (token ids from ``last_token_id``) and keeps each
sequence's block table as a cached array (``block_table_array``). Both must give exactly what
the general rule gives, every step: through admissions, prefix-cache hits, chunked prefill,
preemptions (a new block table for the same sequence) and finishing.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from nanovllm import Config, SamplingParams
from nanovllm.engine.model_inputs import PinnedStaging, prepare_model_inputs
from nanovllm.engine.scheduler import Scheduler
from nanovllm.engine.sequence import Sequence

CPU = torch.device("cpu")


def reference(batch, block_size: int) -> dict[str, list]:
    """The inputs of a step spelled out token by token, from the lists themselves."""
    out = {name: [] for name in ("input_ids", "positions", "slot_mapping", "cu_seqlens_q",
                                 "context_lens", "block_tables", "sample_rows")}
    out["cu_seqlens_q"].append(0)
    width = max(max(len(seq.block_table) for seq in batch.seqs), 1)
    for seq, n, sample in zip(batch.seqs, batch.num_new_tokens, batch.do_sample, strict=True):
        start = seq.num_computed_tokens
        for pos in range(start, start + n):
            out["input_ids"].append(seq.token_ids[pos])
            out["positions"].append(pos)
            out["slot_mapping"].append(seq.block_table[pos // block_size] * block_size
                                       + pos % block_size)
        out["cu_seqlens_q"].append(out["cu_seqlens_q"][-1] + n)
        out["context_lens"].append(start + n)
        out["block_tables"].append(seq.block_table + [-1] * (width - len(seq.block_table)))
        if sample:
            out["sample_rows"].append(out["cu_seqlens_q"][-1] - 1)
    return out


def as_lists(inputs) -> dict[str, list]:
    meta = inputs.meta
    return {"input_ids": inputs.input_ids.tolist(), "positions": inputs.positions.tolist(),
            "slot_mapping": meta.slot_mapping.tolist(), "cu_seqlens_q": meta.cu_seqlens_q.tolist(),
            "context_lens": meta.context_lens.tolist(), "block_tables": meta.block_tables.tolist(),
            "sample_rows": inputs.sample_rows.tolist()}


@pytest.mark.parametrize("seed", range(6))
def test_inputs_match_the_reference_every_step(seed):
    rng = random.Random(seed)
    block_size = rng.choice([1, 2, 4, 16])
    chunked = rng.random() < 0.7
    max_blocks = 128 // block_size  # a pool this small must preempt now and then
    config = Config(block_size=block_size, max_model_len=128,
                    num_kvcache_blocks=max_blocks + rng.randint(0, 2 * max_blocks),
                    max_num_seqs=rng.randint(2, 12), enable_prefix_caching=rng.random() < 0.7,
                    max_num_batched_tokens=rng.choice([8, 32, 256]) if chunked else 256,
                    enable_chunked_prefill=chunked)
    scheduler = Scheduler(config, eos_token_id=None)
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
            expected = reference(batch, block_size)
            for keep in (True, False):  # block tables kept as arrays, or read from the lists
                inputs = prepare_model_inputs(batch, block_size, CPU, keep_block_tables=keep)
                assert as_lists(inputs) == expected
                # The general path, taken for every sequence, agrees with the decode fast path.
                general = replace(batch, is_prefill=[True] * len(batch))
                inputs = prepare_model_inputs(general, block_size, CPU, keep_block_tables=keep)
                assert as_lists(inputs) == expected
        scheduler.postprocess(batch, [rng.randrange(50) for _ in range(sum(batch.do_sample))])
    assert seen["decode_only"] and seen["mixed"]


def test_the_workload_preempts_and_hits_the_prefix_cache():
    """The random workloads above are only worth something if they reach these cases."""
    config = Config(block_size=4, num_kvcache_blocks=12, max_num_seqs=4,
                    max_num_batched_tokens=32, max_model_len=64)
    scheduler = Scheduler(config, eos_token_id=None)
    prefix = list(range(1, 13))
    for i in range(4):
        scheduler.add(Sequence(prefix + [20 + i], SamplingParams(max_tokens=20, ignore_eos=True)))
    preempted = cached = 0
    while not scheduler.is_finished():
        batch = scheduler.schedule()
        preempted += len(batch.preempted_seq_ids)
        cached += sum(seq.num_cached_tokens > 0 for seq in batch.seqs)
        assert as_lists(prepare_model_inputs(batch, 4, CPU)) == reference(batch, 4)
        scheduler.postprocess(batch, [5] * sum(batch.do_sample))
    assert preempted and cached


def test_a_cached_block_table_array_follows_a_new_or_longer_table():
    from nanovllm.engine.model_inputs import block_table_array

    seq = Sequence([1, 2, 3])
    seq.block_table = [4, 5]
    first = block_table_array(seq)
    assert first.tolist() == [4, 5] and block_table_array(seq) is first  # reused
    seq.block_table.append(6)
    assert block_table_array(seq).tolist() == [4, 5, 6]
    seq.block_table = [7, 8, 9]  # same length, new list (as after a preemption)
    assert block_table_array(seq).tolist() == [7, 8, 9]
    assert np.asarray(block_table_array(seq)).dtype == np.int32


def test_a_decode_steps_arrays_pickle_small_for_tensor_parallel_workers():
    """What the driver sends each worker every step (tp_runner.py): 256 sequences at 1,000
    tokens of context in 16-token blocks is six int64 numbers a sequence and 63 int32 block
    ids, about 77 KB, however long the text."""
    from nanovllm.engine.model_inputs import model_input_arrays
    from nanovllm.engine.scheduler import ScheduledBatch

    seqs = []
    for i in range(256):
        seq = Sequence(list(range(1000)), seq_id=i)
        seq.num_computed_tokens, seq.block_table = 999, list(range(63 * i, 63 * i + 63))
        seqs.append(seq)
    batch = ScheduledBatch(seqs, [1] * 256, [False] * 256, [True] * 256)
    arrays = model_input_arrays(batch, 16)
    assert arrays.block_tables.dtype == np.int32 and arrays.block_tables.shape == (256, 63)
    size = len(pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL))
    payload = 5 * 256 * 8 + 257 * 8 + 256 * 63 * 4  # five arrays of 256, cu_seqlens, tables
    assert payload == 76_808 and payload <= size < payload + 2_000
    again = pickle.loads(pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL))
    assert np.array_equal(again.block_tables, arrays.block_tables) and again.decode_only


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_staging_copies_every_dtype_and_reuses_its_buffers():
    staging, device = PinnedStaging(), torch.device("cuda")
    for step in range(3):  # the same buffers, refilled: each copy must see its own values
        arrays = {"ints": np.arange(10, dtype=np.int32) + step,
                  "floats": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3) * step,
                  "keys": np.array([2**62 + step, step], dtype=np.int64)}
        copies = {name: staging.to_device(name, array, device) for name, array in arrays.items()}
        for name, array in arrays.items():
            assert torch.equal(copies[name].cpu(), torch.from_numpy(array))
    assert len(staging.buffers) == 3


def test_graphs_cover_only_steps_whose_every_row_is_sampled():
    """A one-token chunk of a longer prompt has a query of one token, like a decode, but
    samples nothing: such a step runs eagerly (a graph samples every row)."""
    from types import SimpleNamespace

    from nanovllm.engine.cuda_graph import DecodeGraphs
    from nanovllm.engine.model_inputs import InputArrays

    graphs = SimpleNamespace(sizes=[1, 2, 4], block_tables=torch.zeros(4, 8, dtype=torch.int32))

    def step(rows, sampled, width=3, query=1):
        ids = np.arange(rows)
        return InputArrays(input_ids=ids, positions=ids, slot_mapping=ids,
                           cu_seqlens_q=np.arange(rows + 1), context_lens=ids + 1,
                           block_tables=np.zeros((rows, width), dtype=np.int64),
                           sample_rows=np.arange(sampled), max_query_len=query)

    assert DecodeGraphs.covers(graphs, step(3, 3))
    assert not DecodeGraphs.covers(graphs, step(3, 2))  # a middle chunk of one token
    assert not DecodeGraphs.covers(graphs, step(5, 5))  # more rows than the largest graph
    assert not DecodeGraphs.covers(graphs, step(3, 3, width=9))  # a longer block table
    assert not DecodeGraphs.covers(graphs, step(2, 2, query=4))  # a prefill
