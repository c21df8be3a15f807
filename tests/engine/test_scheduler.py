"""Scheduler: admission, chunked prefill, decode-first budgeting, preemption, finishing.

Each test drives the real Scheduler and BlockManager step by step with explicit sampled tokens
and checks the exact batches. Rows read (seq_id, num_new_tokens, is_prefill, do_sample).
"""

from __future__ import annotations

import pytest

from nanovllm import Config, SamplingParams
from nanovllm.engine.scheduler import ScheduledBatch, Scheduler
from nanovllm.engine.sequence import Sequence, SequenceStatus

EOS = 0


def make(num_blocks=16, block_size=4, budget=64, max_num_seqs=8, max_model_len=64,
         caching=True, chunked=True) -> Scheduler:
    config = Config(max_num_batched_tokens=budget, max_num_seqs=max_num_seqs,
                    max_model_len=max_model_len, block_size=block_size,
                    num_kvcache_blocks=num_blocks, enable_prefix_caching=caching,
                    enable_chunked_prefill=chunked)
    return Scheduler(config, eos_token_id=EOS)


def req(tokens, seq_id, max_tokens=16, ignore_eos=False, stop=()) -> Sequence:
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=ignore_eos, stop_token_ids=stop)
    return Sequence(list(tokens), params, seq_id=seq_id)


def rows(batch: ScheduledBatch) -> list[tuple]:
    return [(s.seq_id, n, p, d) for s, n, p, d in zip(batch.seqs, batch.num_new_tokens,
                                                       batch.is_prefill, batch.do_sample,
                                                       strict=True)]


def step(s: Scheduler, token: int = 7) -> ScheduledBatch:
    """Schedule, pretend to run (every sampled token is ``token``), postprocess."""
    batch = s.schedule()
    s.postprocess(batch, [token] * sum(batch.do_sample))
    return batch


def ids(seqs) -> list[int]:
    return [seq.seq_id for seq in seqs]


def test_the_pool_must_be_sized_first():
    with pytest.raises(ValueError, match="num_kvcache_blocks=0 is invalid for a Scheduler"):
        Scheduler(Config(), eos_token_id=EOS)


@pytest.mark.parametrize("tokens, max_tokens, message", [
    ([], 4, "^the prompt is empty; it needs at least one token$"),
    ([1, -1], 4, r"token ids must be ints in \[0, 2\*\*31\)"),
    ([1, 2**31], 4, r"token ids must be ints in \[0, 2\*\*31\)"),
    (range(16), 4, "the prompt has 16 tokens; it must be shorter than max_model_len=16"),
    (range(8), 8, "needs up to 4 KV blocks, but the pool has 3 blocks of 4 tokens"),
])
def test_add_refuses_a_request_that_can_never_run_and_loses_nothing(tokens, max_tokens, message):
    s = make(num_blocks=3, max_model_len=16)
    s.add(req([5, 6, 7], 1, max_tokens=2, ignore_eos=True))
    s.add(req([5, 6], 2, max_tokens=2, ignore_eos=True))
    step(s)
    state = (ids(s.running), ids(s.waiting), list(s.block_manager.free_block_ids),
             dict(s.block_manager.cached_blocks))
    with pytest.raises(ValueError, match=message):
        s.add(req(tokens, 9, max_tokens=max_tokens))
    assert state == (ids(s.running), ids(s.waiting), list(s.block_manager.free_block_ids),
                     dict(s.block_manager.cached_blocks))
    step(s)
    assert s.is_finished()


def test_a_request_that_exactly_fills_the_pool_runs():
    s = make(num_blocks=3, max_model_len=16)
    seq = req(range(1, 9), 0, max_tokens=5, ignore_eos=True)  # K/V for 8 + 4 tokens: 3 blocks
    s.add(seq)
    while not s.is_finished():
        step(s)
    assert seq.completion_token_ids == [7] * 5 and seq.finish_reason == "length"


def test_prefill_then_decode_then_finish():
    s = make()
    seq = req([1, 2, 3, 4, 5], 0, max_tokens=3)
    s.add(seq)
    assert rows(step(s)) == [(0, 5, True, True)]
    assert (seq.status, seq.num_computed_tokens, seq.num_tokens, seq.block_table) == (
        SequenceStatus.RUNNING, 5, 6, [0, 1])
    assert rows(step(s)) == [(0, 1, False, True)]
    batch = s.schedule()
    assert rows(batch) == [(0, 1, False, True)]
    assert s.postprocess(batch, [9]) == [seq]
    assert (seq.status, seq.finish_reason, seq.completion_token_ids) == (
        SequenceStatus.FINISHED, "length", [7, 7, 9])
    assert seq.block_table == [] and s.block_manager.num_free_blocks == 16
    assert s.is_finished() and len(s.schedule()) == 0


@pytest.mark.parametrize("params, sampled, completion, reason", [
    (dict(max_tokens=5), [3, EOS, 3], [3, EOS], "stop"),
    (dict(max_tokens=3, ignore_eos=True), [EOS, EOS, EOS], [EOS, EOS, EOS], "length"),
    (dict(max_tokens=5, stop=(4, 6)), [3, 6, 3], [3, 6], "stop"),
    (dict(max_tokens=5, ignore_eos=True, stop=(EOS,)), [3, EOS], [3, EOS], "stop"),
    (dict(max_tokens=50), [3, 3, 3, 3], [3, 3, 3], "length"),  # max_model_len=8
])
def test_finish_reasons(params, sampled, completion, reason):
    s = make(max_model_len=8)
    seq = req([1, 2, 3, 4, 5], 0, **params)
    s.add(seq)
    for token in sampled:
        if s.is_finished():
            break
        s.postprocess(s.schedule(), [token])
    assert (seq.completion_token_ids, seq.finish_reason) == (completion, reason)
    assert s.is_finished()


def test_postprocess_checks_the_number_of_sampled_tokens_first():
    s = make()
    s.add(req([1, 2], 0))
    batch = s.schedule()
    with pytest.raises(ValueError, match="sampled_token_ids has 2 ids; the batch samples 1"):
        s.postprocess(batch, [3, 4])
    assert batch.seqs[0].num_computed_tokens == 0  # nothing was applied
    s.postprocess(batch, [3])
    assert batch.seqs[0].token_ids == [1, 2, 3]


def test_a_prompt_longer_than_the_budget_is_prefilled_in_chunks():
    s = make(budget=4)
    seq = req(range(1, 11), 0, max_tokens=2)
    s.add(seq)
    for expected, table in [((0, 4, True, False), [0]), ((0, 4, True, False), [0, 1]),
                            ((0, 2, True, True), [0, 1, 2]), ((0, 1, False, True), [])]:
        assert rows(step(s)) == [expected] and seq.block_table == table
    assert seq.finish_reason == "length"


def test_decodes_are_not_starved_by_a_long_prefill():
    s = make(budget=6)
    s.add(req([1, 2], 0, ignore_eos=True))
    s.add(req([3, 4], 1, ignore_eos=True))
    step(s)
    s.add(req(range(100, 120), 2))  # 20 tokens arrive while 0 and 1 are decoding
    assert rows(step(s)) == [(0, 1, False, True), (1, 1, False, True), (2, 4, True, False)]
    assert rows(step(s)) == [(0, 1, False, True), (1, 1, False, True), (2, 4, True, False)]
    s.add(req([5], 3))  # waits behind the prefill in progress, which has the budget left
    for _ in range(3):
        assert rows(step(s))[:2] == [(0, 1, False, True), (1, 1, False, True)]
    assert s.running[2].num_computed_tokens == 20 and ids(s.waiting) == [3]


def test_chunked_prefill_off_admits_only_whole_prompts():
    s = make(budget=8, max_model_len=8, chunked=False)
    s.add(req([1, 2, 3, 4, 5], 0))
    s.add(req([11, 12, 13, 14, 15], 1))
    s.add(req([1, 2, 3, 4, 6], 2))
    assert rows(step(s)) == [(0, 5, True, True)]  # 3 tokens left: not enough for prompt 1
    # Prompt 2 needs only 1 token (4 are cached), but it waits its turn behind prompt 1.
    assert rows(step(s)) == [(0, 1, False, True), (1, 5, True, True), (2, 1, True, True)]


def test_max_num_seqs_limits_the_running_set():
    s = make(max_num_seqs=2)
    for i in range(3):
        s.add(req([i + 1], i, max_tokens=2))
    assert ids(step(s).seqs) == [0, 1] and ids(s.waiting) == [2]
    assert ids(step(s).seqs) == [0, 1]  # both finish here
    assert ids(step(s).seqs) == [2]


def test_the_head_of_the_waiting_queue_is_never_overtaken():
    s = make(num_blocks=4)
    s.add(req(range(1, 9), 0, max_tokens=2))  # holds 2 blocks, 3 when it decodes
    step(s)
    s.add(req(range(20, 28), 1, max_tokens=1))  # needs 2 blocks: only 1 is free
    s.add(req([30], 2, max_tokens=1))  # would fit, but must wait its turn
    assert ids(step(s).seqs) == [0] and ids(s.waiting) == [1, 2]
    assert ids(step(s).seqs) == [1, 2]


def test_two_requests_with_the_same_prefix_in_one_step_share_blocks():
    s = make()
    a, b = req(range(1, 10), 0), req([*range(1, 9), 50], 1)
    s.add(a)
    s.add(b)
    batch = s.schedule()
    # a computes (and publishes) blocks 0 and 1 in this step; b reuses them right away.
    assert rows(batch) == [(0, 9, True, True), (1, 1, True, True)]
    assert (a.block_table, b.block_table, b.num_cached_tokens) == ([0, 1, 2], [0, 1, 3], 8)
    assert [blk.ref_count for blk in s.block_manager.blocks[:4]] == [2, 2, 1, 1]


def test_a_prompt_fully_covered_by_the_cache_still_computes_its_last_block():
    s = make()
    s.add(req(range(1, 9), 0, max_tokens=1))
    step(s)
    b, c = req(range(1, 9), 1, max_tokens=1), req(range(1, 10), 2, max_tokens=1)
    s.add(b)
    s.add(c)
    # b's 8 tokens are all cached, but it needs a last token to sample from, so only block 0
    # is reused and its second block is recomputed; c has one token past the cached blocks.
    assert rows(s.schedule()) == [(1, 4, True, True), (2, 1, True, True)]
    assert (b.num_cached_tokens, c.num_cached_tokens) == (4, 8)


def test_preemption_evicts_the_newest_even_when_it_is_the_one_in_need():
    s = make(num_blocks=3, block_size=2, caching=False)
    a, b = req([1, 2, 3], 0, max_tokens=3, ignore_eos=True), req([4, 5], 1, max_tokens=2)
    s.add(a)
    s.add(b)
    step(s)  # a holds blocks 0 and 1, b holds block 2; the pool is full
    batch = step(s)  # a's token 4 fits in block 1; b's token 3 needs a block: b goes
    assert rows(batch) == [(0, 1, False, True)] and batch.preempted_seq_ids == [1]
    assert (b.status, b.num_computed_tokens, b.block_table, b.token_ids) == (
        SequenceStatus.WAITING, 0, [], [4, 5, 7])
    assert ids(s.waiting) == [1] and ids(s.running) == [0]
    assert rows(step(s)) == [(0, 1, False, True)]  # a takes the freed block, then finishes
    # b is recomputed: prompt and output so far, as one prefill.
    assert rows(step(s)) == [(1, 3, True, True)]
    assert b.completion_token_ids == [7, 7] and b.finish_reason == "length"


def test_victims_go_to_the_front_of_the_waiting_queue_oldest_first():
    s = make(num_blocks=4, block_size=2, caching=False)
    for i, prompt in enumerate([[1, 2, 3], [4], [5]]):
        s.add(req(prompt, i, max_tokens=3, ignore_eos=True))
    step(s)
    step(s)
    s.add(req([6], 3, max_tokens=2))
    batch = s.schedule()  # 0 needs a block: 2 goes; then 1 needs one and is the newest
    assert rows(batch) == [(0, 1, False, True)] and batch.preempted_seq_ids == [2, 1]
    assert ids(s.waiting) == [1, 2, 3]


def test_no_request_is_admitted_in_a_step_that_preempts():
    s = make(num_blocks=4, block_size=2, budget=3, caching=False)
    a, b = (req(p, i, max_tokens=4, ignore_eos=True) for i, p in enumerate([[1, 2, 3], [4, 5, 6]]))
    s.add(a)
    assert rows(step(s)) == [(0, 3, True, True)]
    s.add(b)
    assert rows(step(s)) == [(0, 1, False, True), (1, 2, True, False)]
    batch = step(s)  # a takes the last free block; b needs one more and preempts itself
    assert rows(batch) == [(0, 1, False, True)] and batch.preempted_seq_ids == [1]
    # A 2-token chunk of b would fit in the block it just freed, but not in this step.
    assert ids(s.waiting) == [1] and s.block_manager.num_free_blocks == 1
    assert rows(step(s)) == [(0, 1, False, True), (1, 2, True, False)]


def test_preempting_a_sequence_that_shares_cached_blocks():
    s = make(num_blocks=5, block_size=2)
    a = req([1, 2, 3], 0, max_tokens=6, ignore_eos=True)
    b = req([1, 2, 5], 1, max_tokens=6, ignore_eos=True)
    s.add(a)
    s.add(b)
    assert rows(step(s)) == [(0, 3, True, True), (1, 1, True, True)]
    assert (a.block_table, b.block_table) == ([0, 1], [0, 2])  # block 0 = [1, 2] is shared
    for token in (8, 9, 10):
        step(s, token)
    assert s.block_manager.num_free_blocks == 0 and b.block_table == [0, 2, 4]
    batch = step(s, 11)  # a needs a fourth block: b, the newest, is preempted
    assert batch.preempted_seq_ids == [1] and ids(s.waiting) == [1]
    assert b.token_ids == [1, 2, 5, 7, 8, 9, 10] and b.block_table == []
    assert a.block_table == [0, 1, 3, 4]  # b's last block was reused at once
    blocks = s.block_manager.blocks
    assert blocks[0].ref_count == 1  # still held by a, and still in the cache
    assert (blocks[2].ref_count, list(s.block_manager.free_block_ids)) == (0, [2])
    # a finishes next step; b comes back and revives blocks 0 and 2 from the cache.
    step(s)
    assert a.is_finished
    assert rows(step(s)) == [(1, 3, True, True)]
    assert b.num_cached_tokens == 4 and b.block_table[:2] == [0, 2]
