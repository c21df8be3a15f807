"""Fault injection: failed steps, aborts, interrupted calls and colliding keys lose nothing else.

Two levels. With ``FakeModel`` as the engine's data plane, random workloads meet failing steps
(which first scribble wrong K/V over the slots they would fill) and aborts; after every step
the accounting invariants hold, every key in the prefix cache stands for K/V that was really
written, and every request that was not touched finishes exactly as it would alone. With the
real bundled model, the same faults leave an ``LLM`` that gives the same tokens as a fresh one.
"""

from __future__ import annotations

import gc

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nanovllm.config import Config
from nanovllm.engine.scheduler import Scheduler
from nanovllm.engine.sequence import SequenceStatus
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams
from tests.engine.fake_model import EOS, VOCAB, FakeModel, InvariantChecker, reference_completion

GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


class FaultyRunner:
    """``FakeModel`` as the engine's model runner; the steps in ``fail_at`` (counted from 1)
    write wrong K/V into every slot they would fill, as a step dying halfway might, then raise."""

    def __init__(self, model: FakeModel, fail_at: set[int]):
        self.model, self.fail_at = model, fail_at
        self.steps, self.failed_seq_ids, self.last_batch = 0, set(), None

    def run(self, batch) -> list[int]:
        self.steps += 1
        self.last_batch = batch
        if self.steps in self.fail_at:
            for seq, n in zip(batch.seqs, batch.num_new_tokens, strict=True):
                for pos in range(seq.num_computed_tokens, seq.num_computed_tokens + n):
                    block, offset = self.model.slot(seq, pos)
                    self.model.kv[block][offset] = (-1, -1)
            self.failed_seq_ids |= {seq.seq_id for seq in batch.seqs}
            raise RuntimeError("injected fault")
        return self.model.step(batch)

    def check_usable(self) -> None:
        pass


@pytest.fixture(scope="module")
def engine():
    """An engine whose scheduler and runner each test replaces (the model is never run)."""
    return LLM(device="cpu", num_kvcache_blocks=16).engine


def fake_engine(engine, config: Config, fail_at: set[int]) -> FaultyRunner:
    engine.scheduler = Scheduler(config, eos_token_id=EOS)
    engine.model_runner = FaultyRunner(FakeModel(config.num_kvcache_blocks, config.block_size),
                                       fail_at)
    return engine.model_runner


@settings(max_examples=150, deadline=None)
@given(data=st.data(), bs=st.sampled_from([1, 2, 4]), caching=st.booleans(),
       budget=st.integers(2, 24), extra_blocks=st.integers(0, 12))
def check_faults(engine, data, bs, caching, budget, extra_blocks):
    tokens = st.integers(1, VOCAB - 1)
    prefix = data.draw(st.lists(tokens, min_size=bs, max_size=3 * bs))
    prompts = [data.draw(st.sampled_from([[], prefix])) + data.draw(st.lists(tokens, max_size=9))
               for _ in range(data.draw(st.integers(2, 8)))]
    prompts = [p or [1] for p in prompts]
    params = SamplingParams(max_tokens=data.draw(st.integers(1, 10)), ignore_eos=True)
    need = max(-(-(len(p) + params.max_tokens - 1) // bs) for p in prompts)
    config = Config(max_num_batched_tokens=budget, max_num_seqs=3, max_model_len=64,
                    block_size=bs, num_kvcache_blocks=need + extra_blocks,
                    enable_prefix_caching=caching)
    runner = fake_engine(engine, config, set(data.draw(st.lists(st.integers(1, 30), max_size=4))))
    seqs = [engine.add_request(p, params) for p in prompts]
    checker = InvariantChecker(engine.scheduler, runner.model, seqs)
    aborted: set[int] = set()
    while not engine.is_finished():
        output = engine.step()
        if runner.steps not in runner.fail_at:
            checker(runner.last_batch, [t for _, t in output.sampled])
        if data.draw(st.integers(0, 9)) == 0:  # now and then, abort a request between steps
            victim = data.draw(st.sampled_from(seqs))
            aborted |= {seq.seq_id for seq in engine.abort([victim])}
            checker(runner.last_batch, [])
    bm = engine.scheduler.block_manager
    assert bm.num_free_blocks == bm.num_blocks and not engine.scheduler.running
    for seq, prompt in zip(seqs, prompts, strict=True):
        expected, _ = reference_completion(prompt, params, 64, eos=EOS)
        assert seq.status is SequenceStatus.FINISHED
        assert seq.completion_token_ids == expected[:seq.num_completion_tokens]
        if seq.seq_id in runner.failed_seq_ids:
            assert (seq.finish_reason, seq.error) == ("error", "RuntimeError: injected fault")
        elif seq.seq_id in aborted:
            assert seq.finish_reason == "abort"
        else:  # untouched: exactly what it gets alone
            assert (seq.completion_token_ids, seq.finish_reason) == (expected, "length")


def test_failed_steps_and_aborts_keep_the_pool_and_the_prefix_cache_exact(engine):
    check_faults(engine)


def test_a_failed_step_withdraws_the_blocks_it_published(engine):
    """Two requests with one prefix are admitted in the failing step (the second shares the
    blocks the first publishes); afterwards the cache holds none of them, and a third request
    with that prefix computes it again and reads only K/V that was really written."""
    config = Config(max_num_batched_tokens=64, max_num_seqs=4, max_model_len=64, block_size=4,
                    num_kvcache_blocks=16)
    fake_engine(engine, config, fail_at={1})
    prefix = [5, 6, 7, 8, 9, 10, 11, 12]
    a, b = (engine.add_request(prefix + [n], GREEDY) for n in (1, 2))
    output = engine.step()
    assert output.finished == [a, b] and b.num_cached_tokens == 8  # b shared a's new blocks
    assert (a.finish_reason, a.error) == ("error", "RuntimeError: injected fault")
    bm = engine.scheduler.block_manager
    assert bm.cached_blocks == {} and bm.num_free_blocks == 16
    c = engine.add_request(prefix + [3], SamplingParams(max_tokens=2, ignore_eos=True))
    while not engine.is_finished():
        engine.step()  # FakeModel asserts that c reads back exactly its own K/V
    assert c.num_cached_tokens == 0
    assert c.completion_token_ids == reference_completion(prefix + [3], c.sampling_params, 64)[0]


def colliding_key(token_ids, prev_key) -> int:
    """Forgets the prefix: the same tokens get the same key at any position, after anything."""
    return hash(tuple(token_ids))


def test_a_colliding_key_costs_a_miss_never_wrong_kv(engine):
    config = Config(max_num_batched_tokens=64, max_num_seqs=4, max_model_len=64, block_size=4,
                    num_kvcache_blocks=32)
    fake_engine(engine, config, fail_at=set())
    engine.scheduler.block_manager.key_function = colliding_key
    params = SamplingParams(max_tokens=3, ignore_eos=True)
    prompts = [[5, 6, 7, 8, 9, 9, 9, 9, 1], [1, 2, 3, 4, 2], [1, 2, 3, 4, 9, 9, 9, 9, 3],
               [9, 9, 9, 9, 9, 9, 9, 9, 4]]
    seqs = []
    for prompt in prompts:  # one at a time, so each finds what the earlier ones cached
        seqs.append(engine.add_request(prompt, params))
        while not engine.is_finished():
            engine.step()  # FakeModel fails on any K/V read from the wrong prefix
    # The third prompt's second block collides with the first's (same tokens, same key) but
    # follows another block: only its first block, shared with the second prompt, is a hit.
    assert [seq.num_cached_tokens for seq in seqs] == [0, 0, 4, 0]
    assert [seq.completion_token_ids for seq in seqs] == [
        reference_completion(p, params, 64)[0] for p in prompts]


# -- the real bundled model -----------------------------------------------------------------

PROMPTS = ["ROMEO:", "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo? Deny thy father",
           "To be, or not to be", "Now is the winter"]


@pytest.fixture(scope="module")
def expected():
    """What a fresh engine gives, one call for all prompts."""
    fresh = LLM(device="cpu")
    return [o.token_ids for o in fresh.generate(PROMPTS, GREEDY, use_tqdm=False)]


def assert_pool_whole(llm: LLM) -> None:
    scheduler = llm.engine.scheduler
    bm = scheduler.block_manager
    assert scheduler.is_finished()
    assert all(block.ref_count == 0 for block in bm.blocks)
    assert sorted(bm.free_block_ids) == list(range(bm.num_blocks))
    for key, block_id in bm.cached_blocks.items():
        block = bm.blocks[block_id]
        assert block.key == key and len(block.token_ids) == bm.block_size
        assert block.content is not None


def fail_run(llm: LLM, at_step: int, error: BaseException, scribble: bool = True):
    """Make step ``at_step`` (from 1) of the runner raise ``error``, after filling the whole
    KV cache with NaN when ``scribble`` (a step that died halfway)."""
    runner, steps = llm.engine.model_runner, [0]
    real_run = runner.run

    def run(batch):
        steps[0] += 1
        if steps[0] == at_step:
            if scribble:
                runner.kv_cache.fill_(float("nan"))
            raise error
        return real_run(batch)

    runner.run = run
    return steps


def test_a_failed_step_ends_only_its_requests(expected):
    llm = LLM(device="cpu", max_num_seqs=2)  # the last two prompts wait while it fails
    fail_run(llm, at_step=3, error=RuntimeError("the device fell over"), scribble=False)
    outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert [o.finish_reason for o in outputs] == ["error", "error", "length", "length"]
    assert outputs[0].error == "RuntimeError: the device fell over"
    assert len(outputs[0].token_ids) == 2  # two steps had completed for it
    assert [o.token_ids for o in outputs[2:]] == expected[2:]
    assert_pool_whole(llm)
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def test_after_a_failed_prefill_the_prefix_is_computed_again(expected):
    llm = LLM(device="cpu")
    fail_run(llm, at_step=1, error=RuntimeError("halfway"))  # scribbles NaN over the cache
    (failed,) = llm.generate([PROMPTS[1]], GREEDY, use_tqdm=False)
    assert failed.finish_reason == "error"
    assert_pool_whole(llm)
    assert llm.engine.scheduler.block_manager.cached_blocks == {}
    (again,) = llm.generate([PROMPTS[1]], GREEDY, use_tqdm=False)
    assert len(again.prompt_token_ids) > 16  # at least one full block was published
    assert again.num_cached_tokens == 0 and again.token_ids == expected[1]


def test_ctrl_c_during_generate_aborts_the_call(expected):
    llm = LLM(device="cpu")
    fail_run(llm, at_step=4, error=KeyboardInterrupt(), scribble=False)
    with pytest.raises(KeyboardInterrupt):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert_pool_whole(llm)
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


@pytest.mark.parametrize("overlap_steps", [False, True], ids=["plain", "overlapped"])
@pytest.mark.parametrize("how", ["break", "close", "garbage"])
def test_a_stream_left_early_aborts_its_requests(expected, how, overlap_steps):
    llm = LLM(device="cpu", overlap_steps=overlap_steps)
    events = llm.stream(PROMPTS, GREEDY)
    if how == "break":
        for _ in events:
            break
    else:
        for _ in range(5):
            next(events)
        if how == "close":
            events.close()
    del events
    gc.collect()
    assert_pool_whole(llm)
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def test_a_held_stream_blocks_a_new_call_with_a_clear_error():
    llm = LLM(device="cpu")
    events = llm.stream(PROMPTS, GREEDY)
    next(events)
    with pytest.raises(RuntimeError, match=r"^requests of an earlier stream\(\) are still "
                                           r"running; consume that iterator to the end, "
                                           r"close\(\) it, or call abort\(\) first$"):
        llm.generate(["x"], use_tqdm=False)
    events.close()
    assert len(llm.generate(["x"], GREEDY, use_tqdm=False)[0].token_ids) == 12


@pytest.mark.parametrize("overlap_steps", [False, True], ids=["plain", "overlapped"])
def test_abort_ends_one_request_and_the_others_go_on(expected, overlap_steps):
    llm = LLM(device="cpu", overlap_steps=overlap_steps)
    events, seen = [], 0
    for event in llm.stream(PROMPTS, GREEDY):
        events.append(event)
        seen += event.index == 1
        if seen == 3 and event.index == 1:
            llm.abort(1)
    mine = [e for e in events if e.index == 1]
    assert [e.finish_reason for e in mine] == [None, None, None, "abort"]
    assert mine[-1].token_id is None and mine[-1].text == ""
    assert [e.token_id for e in mine[:3]] == expected[1][:3]
    for i in (0, 2, 3):
        assert [e.token_id for e in events if e.index == i] == expected[i]
    assert_pool_whole(llm)
    with pytest.raises(ValueError, match=r"^no request 7 is running; the running call's "
                                         r"requests are \[0, 1, 2, 3\]$"):
        llm.abort(7)


def test_abort_all_ends_the_stream():
    llm = LLM(device="cpu")
    events = []
    for event in llm.stream(PROMPTS, GREEDY):
        events.append(event)
        if len(events) == 4:  # every request has its first token
            llm.abort()
    assert sorted(e.index for e in events if e.finish_reason == "abort") == [0, 1, 2, 3]
    assert len(events) == 8
    assert_pool_whole(llm)


def test_a_colliding_key_in_the_real_engine_gives_the_fresh_tokens():
    llm = LLM(device="cpu")
    llm.engine.scheduler.block_manager.key_function = colliding_key
    ids = llm.tokenizer.encode("O Romeo, Romeo, wherefore art thou Romeo? Deny thy father "
                               "and refuse thy name; or, if thou wilt not, be but sworn my love")
    assert len(ids) >= 32
    first = ids[:32] + [5]
    second = ids[16:32] + ids[16:32] + [5]  # its second block's tokens collide with first's
    fresh = LLM(device="cpu").generate([second], GREEDY, use_tqdm=False)[0].token_ids
    llm.generate([first], GREEDY, use_tqdm=False)
    (output,) = llm.generate([second], GREEDY, use_tqdm=False)
    assert output.num_cached_tokens == 0  # its first block collides with first's second block
    assert output.token_ids == fresh


def test_nan_in_the_cache_really_changes_the_tokens(expected):
    """The failed-prefill test above can fail: reading the scribbled blocks gives other tokens."""
    llm = LLM(device="cpu")
    llm.generate([PROMPTS[1]], GREEDY, use_tqdm=False)
    llm.engine.model_runner.kv_cache.fill_(float("nan"))
    (poisoned,) = llm.generate([PROMPTS[1]], GREEDY, use_tqdm=False)
    assert poisoned.num_cached_tokens > 0 and poisoned.token_ids != expected[1]
    assert torch.isnan(llm.engine.model_runner.kv_cache).any()
