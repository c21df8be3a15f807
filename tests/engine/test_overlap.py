"""The overlapped engine gives what the plain engine gives, and loses nothing when interrupted.

Each workload runs on the plain engine and on the overlapped one (``overlap_steps=True``)
and must give the same tokens, finish reasons, stop reasons and texts: greedy and seeded
sampling, chunked prefill, preemption, the prefix cache, end-of-sequence and stop tokens,
stop strings and the length limits. Then faults on the overlapped engine: a step that fails
when launched or when its tokens are read, Ctrl-C at either moment, aborts with a length end
in flight; afterwards the pool is whole and the next call gives a fresh engine's tokens.
(``test_faults.py`` runs its stream and abort tests on both engines.)
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nanovllm.engine import overlap
from nanovllm.engine.overlap import PENDING, OverlappedEngine
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams
from tests.engine.model_fixtures import tiny_checkpoint
from tests.engine.test_faults import PROMPTS, assert_pool_whole
from tests.engine.test_generation_invariance import make_prompts

GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


def outcome(outputs) -> list[tuple]:
    return [(o.token_ids, o.finish_reason, o.stop_reason, o.text, o.error) for o in outputs]


def both(prompts, params, device="cpu", **config):
    """The plain and the overlapped engine's outputs for one call on fresh engines."""
    model = str(tiny_checkpoint("qwen3"))
    results = []
    for overlap_steps in (False, True):
        llm = LLM(model, dtype="float32", device=device, overlap_steps=overlap_steps, **config)
        results.append((llm, llm.generate(prompts, params, use_tqdm=False)))
    return results


def stops_of(prompts: list, model: str) -> list[SamplingParams]:
    """Per prompt: a stop token and a stop string taken from what the plain engine generates,
    so that both really end requests early, plus a request ended by its EOS."""
    llm = LLM(model, dtype="float32", device="cpu")
    plain = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=20,
                                                 ignore_eos=True), use_tqdm=False)
    params = []
    for i, out in enumerate(plain):
        if i % 3 == 0:
            params.append(SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True,
                                         stop_token_ids=[out.token_ids[7]]))
        elif i % 3 == 1:
            params.append(SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True,
                                         stop=[out.text[10:13]]))
        else:
            params.append(SamplingParams(temperature=0.0, max_tokens=20))
    return params


CONFIGS = {
    "default": {},
    "chunked prefill": {"max_num_batched_tokens": 32},
    "preemption": {"num_kvcache_blocks": 10, "max_num_batched_tokens": 64},
    "no prefix cache": {"enable_prefix_caching": False},
    "small blocks": {"block_size": 4, "num_kvcache_blocks": 64},
    "two at a time": {"max_num_seqs": 2},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_greedy_outputs_are_the_plain_engines(config):
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    (plain_llm, plain), (llm, overlapped) = both(make_prompts(), params, **config)
    assert outcome(overlapped) == outcome(plain)
    assert llm.engine.is_finished() and isinstance(llm.engine, OverlappedEngine)
    assert_pool_whole(llm)
    if "num_kvcache_blocks" in config and config["num_kvcache_blocks"] == 10:
        assert llm.engine.num_preemptions >= 2


def test_seeded_and_mixed_sampling_are_the_plain_engines():
    params = [SamplingParams(temperature=1.0, top_p=0.9, max_tokens=16, ignore_eos=True, seed=s)
              for s in range(4)] + [SamplingParams(temperature=0.7, top_k=5, max_tokens=1,
                                                   seed=9)]
    (_, plain), (_, overlapped) = both(make_prompts(), params, max_num_batched_tokens=64)
    assert outcome(overlapped) == outcome(plain)


def test_stop_tokens_stop_strings_and_eos_end_the_same_requests_at_the_same_token():
    prompts = make_prompts() + PROMPTS
    params = stops_of(prompts, str(tiny_checkpoint("qwen3")))
    (_, plain), (llm, overlapped) = both(prompts, params)
    reasons = [o.finish_reason for o in plain]
    assert "stop" in reasons and any(isinstance(o.stop_reason, str) for o in plain)
    assert any(isinstance(o.stop_reason, int) for o in plain)
    assert outcome(overlapped) == outcome(plain)
    assert_pool_whole(llm)


def test_the_length_limits_end_the_same_requests():
    prompts = make_prompts()
    params = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
              for n in (1, 2, 17, 40, 3)]
    (_, plain), (_, overlapped) = both(prompts, params, max_model_len=80)
    assert outcome(overlapped) == outcome(plain)
    assert [len(o.token_ids) for o in plain][:2] == [1, 2]
    assert any(len(p) + len(o.token_ids) == 80 for p, o in zip(prompts, plain, strict=True))


def test_the_prefix_cache_never_keys_a_pending_token():
    llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", device="cpu", block_size=4,
              num_kvcache_blocks=64, overlap_steps=True)
    engine, pending_seen = llm.engine, 0
    for prompt in make_prompts():
        engine.add_request(prompt, SamplingParams(temperature=0.0, max_tokens=20,
                                                  ignore_eos=True))
    while not engine.is_finished():
        engine.step()
        bm = engine.scheduler.block_manager
        pending_seen += sum(s.last_token_id == PENDING for s in engine.scheduler.running)
        for block_id in bm.cached_blocks.values():
            assert PENDING not in bm.blocks[block_id].token_ids
    assert pending_seen > 20  # the check ran while tokens were in flight
    # the blocks completed by generated tokens were published once their tokens were known
    again = llm.generate([make_prompts()[0]], SamplingParams(temperature=0.0, max_tokens=1),
                         use_tqdm=False)
    assert again[0].num_cached_tokens >= 52


def test_a_step_runs_while_the_one_before_is_unread():
    """The engine launches step N+1 before it reads step N's tokens: the runner sees a
    decode whose input id is still pending, and fills it on the device."""
    llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", device="cpu", overlap_steps=True)
    runner, seen = llm.engine.model_runner, []
    real_sample = runner.sample

    def sample(inputs, sampling, fill=None):
        seen.append((PENDING in inputs.input_ids.tolist(), fill is not None))
        return real_sample(inputs, sampling, fill)

    runner.sample = sample
    llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert seen[0] == (False, False)  # the prompts
    assert all(s == (True, True) for s in seen[1:]) and len(seen) >= 12


# -- faults ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expected():
    fresh = LLM(device="cpu")
    return [o.token_ids for o in fresh.generate(PROMPTS, GREEDY, use_tqdm=False)]


def fail_launch(llm: LLM, at_step: int, error: BaseException):
    runner, steps = llm.engine.model_runner, [0]
    real_sample = runner.sample

    def sample(*args, **kwargs):
        steps[0] += 1
        if steps[0] == at_step:
            raise error
        return real_sample(*args, **kwargs)

    runner.sample = sample


def test_a_step_that_fails_at_launch_ends_only_its_requests(expected):
    plain = LLM(device="cpu", max_num_seqs=2)
    llm = LLM(device="cpu", max_num_seqs=2, overlap_steps=True)
    for engine in (plain, llm):
        fail_launch(engine, at_step=3, error=RuntimeError("the device fell over"))
    assert outcome(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == outcome(
        plain.generate(PROMPTS, GREEDY, use_tqdm=False))
    assert_pool_whole(llm)
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def fail_read(monkeypatch, llm: LLM, at_read: int, scribble: bool) -> None:
    """A device error surfaces when a step's tokens are read, after the next step is launched;
    with ``scribble``, the failed step first fills the whole KV cache with NaN."""
    reads, real = [0], overlap.Launched.token_ids

    def token_ids(self):
        reads[0] += 1
        if reads[0] == at_read:
            if scribble:
                llm.engine.model_runner.kv_cache.fill_(float("nan"))
            raise RuntimeError("an illegal memory access was encountered")
        return real(self)

    monkeypatch.setattr(overlap.Launched, "token_ids", token_ids)


def test_a_step_that_fails_when_read_ends_only_its_requests(monkeypatch, expected):
    llm = LLM(device="cpu", max_num_seqs=2, overlap_steps=True)
    fail_read(monkeypatch, llm, at_read=3, scribble=False)
    outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert [o.finish_reason for o in outputs] == ["error", "error", "length", "length"]
    assert outputs[0].error == "RuntimeError: an illegal memory access was encountered"
    assert outputs[0].token_ids == expected[0][:2]  # two steps had been read for it
    assert [o.token_ids for o in outputs[2:]] == expected[2:]
    assert_pool_whole(llm)
    monkeypatch.undo()
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def test_a_prefill_that_fails_when_read_leaves_nothing_in_the_cache(monkeypatch, expected):
    """The prefill's blocks were keyed when it was scheduled; when its tokens cannot be read,
    its K/V may never have been written, so the keys go: the next call computes them again."""
    llm = LLM(device="cpu", overlap_steps=True)
    fail_read(monkeypatch, llm, at_read=1, scribble=True)
    (failed,) = llm.generate([PROMPTS[1]], GREEDY, use_tqdm=False)
    assert failed.finish_reason == "error" and failed.token_ids == []
    assert_pool_whole(llm)
    assert llm.engine.scheduler.block_manager.cached_blocks == {}
    monkeypatch.undo()
    (again,) = llm.generate([PROMPTS[1]], GREEDY, use_tqdm=False)
    assert len(again.prompt_token_ids) > 16  # at least one full block was published
    assert again.num_cached_tokens == 0 and again.token_ids == expected[1]


def test_ctrl_c_during_generate_aborts_the_call(expected):
    llm = LLM(device="cpu", overlap_steps=True)
    fail_launch(llm, at_step=4, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert_pool_whole(llm)
    assert llm.engine.is_finished()
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def test_abort_all_ends_the_stream_even_with_a_length_end_in_flight():
    llm = LLM(device="cpu", overlap_steps=True)
    params = [SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True), GREEDY, GREEDY,
              GREEDY]
    events = []
    for event in llm.stream(PROMPTS, params):
        events.append(event)
        if len(events) == 4:  # every request has its first token; request 0's last is launched
            llm.abort()
    assert sorted(e.index for e in events if e.finish_reason == "abort") == [0, 1, 2, 3]
    assert len(events) == 8
    assert_pool_whole(llm)
    assert llm.engine.is_finished()
    assert len(llm.generate(["x"], GREEDY, use_tqdm=False)[0].token_ids) == 12


def test_stream_events_are_the_plain_engines():
    params = stops_of(PROMPTS, str(tiny_checkpoint("qwen3")))
    streams = []
    for overlap_steps in (False, True):
        llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", device="cpu",
                  overlap_steps=overlap_steps)
        streams.append(sorted((e.index, e.token_id or -1, e.text, e.finish_reason or "")
                              for e in llm.stream(PROMPTS, params)))
    assert streams[0] == streams[1]


def test_overlap_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match=r"^overlap_steps=True is invalid: True needs "
                                         r"tensor_parallel_size=1 \(one process\)$"):
        LLM(device="cpu", overlap_steps=True, tensor_parallel_size=2)
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match=rf"^overlap_steps={bad!r} is invalid: True, "
                                             r"False or 'auto'$"):
            LLM(device="cpu", overlap_steps=bad)
    llm = LLM(device="cpu", overlap_steps=True)
    with pytest.raises(ValueError, match=r"^traces record the plain engine's steps"):
        llm.engine.start_trace()


@pytest.mark.parametrize(("fields", "overlapped"), [
    ({"device": "auto"}, True),  # "auto" where the GPU is found (pretended below)
    ({"device": "cpu"}, False),
    ({"device": "cpu", "overlap_steps": True}, True),
    ({"device": "auto", "tensor_parallel_size": 2}, False),  # two processes: plain
    ({"device": "auto", "overlap_steps": False}, False),
], ids=["auto", "auto-cpu", "asked-for", "auto-two-processes", "declined"])
def test_auto_overlaps_on_a_gpu_with_one_process(fields, overlapped, monkeypatch):
    from nanovllm.engine import overlap

    # "auto" finds a GPU here, on any machine; "cpu" stays a CPU
    monkeypatch.setattr(overlap, "resolve_device", lambda name: torch.device(
        "cpu" if name == "cpu" else "cuda"))
    made = []  # the class make_engine picks and the config it passes, without building it
    monkeypatch.setattr(overlap, "OverlappedEngine", lambda *a, **k: made.append((True, k)))
    monkeypatch.setattr(overlap, "LLMEngine", lambda *a, **k: made.append((False, k)))
    overlap.make_engine("", **fields)
    assert made == [(overlapped, {**fields, "overlap_steps": overlapped})]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("eager", [False, True], ids=["graphs", "eager"])
def test_on_the_gpu_outputs_are_the_plain_engines(eager):
    params = [SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True),
              SamplingParams(temperature=0.8, max_tokens=24, ignore_eos=True, seed=7),
              SamplingParams(temperature=1.0, top_p=0.9, max_tokens=24, ignore_eos=True, seed=1),
              SamplingParams(temperature=0.0, max_tokens=3), SamplingParams(temperature=0.0)]
    (_, plain), (llm, overlapped) = both(make_prompts(), params, device="cuda",
                                         enforce_eager=eager, num_kvcache_blocks=256,
                                         max_num_seqs=16)
    graphs = llm.engine.model_runner.graphs
    if graphs is not None:  # every row a replay reads holds a token id, padding rows too
        real_replay, sizes = graphs.replay, []

        def replay(inputs, sampling, fill=None):
            tokens = real_replay(inputs, sampling, fill)
            size = next(s for s in graphs.sizes if s >= len(inputs.input_ids))
            sizes.append(size - len(inputs.input_ids))
            assert graphs.static.on_device.input_ids[:size].min().item() >= 0
            return tokens

        graphs.replay = replay
        again = llm.generate(make_prompts(), params, use_tqdm=False)
        assert outcome(again) == outcome(plain) and max(sizes) > 0  # padded steps ran
    assert (llm.engine.model_runner.graphs is None) == eager
    assert outcome(overlapped) == outcome(plain)
    assert_pool_whole(llm)


# -- random workloads -----------------------------------------------------------------------

def check_pool(engine) -> None:
    """Every block is free or held, as often as the running tables hold it; no cached key
    stands for a token still pending."""
    bm, held = engine.scheduler.block_manager, {}
    for seq in engine.scheduler.running:
        for block_id in seq.block_table:
            held[block_id] = held.get(block_id, 0) + 1
    for block in bm.blocks:
        assert block.ref_count == held.get(block.block_id, 0)
        assert (block.ref_count == 0) == (block.block_id in bm.free_block_ids)
    for key, block_id in bm.cached_blocks.items():
        assert bm.blocks[block_id].key == key and PENDING not in bm.blocks[block_id].token_ids


@settings(max_examples=40, deadline=None)
@given(data=st.data(), bs=st.sampled_from([2, 4, 16]), caching=st.booleans(),
       budget=st.integers(8, 64), extra_blocks=st.integers(0, 8), seqs=st.integers(1, 4))
def test_random_workloads_with_faults_and_aborts(data, bs, caching, budget, extra_blocks,
                                                 seqs):
    """Random prompts (some sharing a prefix), lengths, stops, aborts between steps and
    steps failing when launched or when read: untouched requests give what the plain engine
    gives them, and the pool and the cache stay exact after every step."""
    tokens = st.integers(3, 250)
    prefix = data.draw(st.lists(tokens, min_size=4, max_size=20))
    prompts = [data.draw(st.sampled_from([[], prefix])) + data.draw(st.lists(tokens,
                                                                               min_size=1,
                                                                               max_size=12))
               for _ in range(data.draw(st.integers(2, 6)))]
    params = [SamplingParams(temperature=0.0, max_tokens=data.draw(st.integers(1, 14)),
                             ignore_eos=data.draw(st.booleans()),
                             stop_token_ids=data.draw(st.lists(tokens, max_size=3)))
              for _ in prompts]
    need = max(-(-(len(p) + q.max_tokens) // bs) for p, q in zip(prompts, params, strict=True))
    config = {"block_size": bs, "num_kvcache_blocks": need + extra_blocks, "max_num_batched_tokens": budget,
              "max_num_seqs": seqs, "enable_prefix_caching": caching, "max_model_len": 48}
    model = str(tiny_checkpoint("qwen3"))
    plain = LLM(model, dtype="float32", device="cpu", **config).generate(
        prompts, params, use_tqdm=False)
    llm = LLM(model, dtype="float32", device="cpu", overlap_steps=True, **config)
    engine = llm.engine
    fail_at = set(data.draw(st.lists(st.integers(1, 60), max_size=1)))
    read_fail_at = set(data.draw(st.lists(st.integers(1, 60), max_size=1)))
    calls, reads = [0], [0]
    real_sample, real_read = engine.model_runner.sample, overlap.Launched.token_ids
    touched: set[int] = set()

    def sample(inputs, sampling, fill=None):
        calls[0] += 1
        if calls[0] in fail_at:
            raise RuntimeError("injected at launch")
        return real_sample(inputs, sampling, fill)

    def read(launched):
        reads[0] += 1
        if reads[0] in read_fail_at:
            touched.update(seq.seq_id for seq in launched.batch.seqs)
            raise RuntimeError("injected at read")
        return real_read(launched)

    engine.model_runner.sample = sample
    seq_list = [engine.add_request(p, q) for p, q in zip(prompts, params, strict=True)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(overlap.Launched, "token_ids", read)
        while not engine.is_finished():
            output = engine.step()
            if any(s.error == "RuntimeError: injected at launch" for s in output.finished):
                touched.update(s.seq_id for s in output.finished if s.error)
            check_pool(engine)
            if data.draw(st.integers(0, 19)) == 0:
                victim = data.draw(st.sampled_from(seq_list))
                touched.update(s.seq_id for s in engine.abort([victim]))
                check_pool(engine)
    assert_pool_whole(llm)
    for seq, reference in zip(seq_list, plain, strict=True):
        assert seq.is_finished and PENDING not in seq.token_ids
        if seq.finish_reason == "error":
            assert seq.error in ("RuntimeError: injected at launch",
                                 "RuntimeError: injected at read")
        if seq.seq_id in touched or seq.finish_reason in ("error", "abort"):
            assert seq.completion_token_ids == reference.token_ids[:seq.num_completion_tokens]
        else:
            assert (seq.completion_token_ids, seq.finish_reason, seq.stop_reason) == (
                reference.token_ids, reference.finish_reason, reference.stop_reason)


def test_ctrl_c_while_a_step_is_read_aborts_the_call(monkeypatch, expected):
    """Ctrl-C while the host waits for a step's tokens, after that step ended a request by
    its length: the call's requests are aborted, the pool is whole, the LLM serves the next
    call."""
    llm = LLM(device="cpu", overlap_steps=True)
    reads, real = [0], overlap.Launched.token_ids

    def token_ids(self):
        reads[0] += 1
        if reads[0] == 2:  # the step in which request 0 reaches max_tokens=2
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(overlap.Launched, "token_ids", token_ids)
    params = [SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True), GREEDY]
    with pytest.raises(KeyboardInterrupt):
        llm.generate(PROMPTS[:2], params, use_tqdm=False)
    monkeypatch.undo()
    assert llm.engine.is_finished() and not llm.engine.leaving
    assert_pool_whole(llm)
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def test_a_failed_read_ends_the_step_queued_behind_it_and_poisons_no_key(monkeypatch):
    """Request B is admitted into the step queued behind the failing one and shares the
    blocks that step published for A. Both end with the error; no key survives for K/V
    that may never have been written, so a later prompt with A's start computes it again."""
    model = str(tiny_checkpoint("qwen3"))
    llm = LLM(model, dtype="float32", device="cpu", overlap_steps=True,
              max_num_batched_tokens=40)
    generator = torch.Generator().manual_seed(5)
    start = torch.randint(3, 250, (36,), generator=generator).tolist()
    a = llm.engine.add_request(start, GREEDY)
    llm.engine.step()  # A's prefill is launched (32 tokens published, 4 more)
    b = llm.engine.add_request(start[:32] + [7, 8, 9], GREEDY)
    fail_read(monkeypatch, llm, at_read=1, scribble=False)
    output = llm.engine.step()  # B shares A's blocks in the queued step; A's read fails
    assert b.num_cached_tokens == 32
    assert {s.seq_id for s in output.finished} == {a.seq_id, b.seq_id}
    assert a.finish_reason == b.finish_reason == "error"
    monkeypatch.undo()
    while not llm.engine.is_finished():
        llm.engine.step()
    assert_pool_whole(llm)
    assert llm.engine.scheduler.block_manager.cached_blocks == {}
    plain = LLM(model, dtype="float32", device="cpu").generate([start], GREEDY,
                                                               use_tqdm=False)[0]
    (again,) = llm.generate([start], GREEDY, use_tqdm=False)
    assert again.num_cached_tokens == 0 and again.token_ids == plain.token_ids


def test_a_new_scheduler_forgets_the_step_on_the_device():
    """The benchmark harness swaps schedulers between runs (``use_scheduler``)."""
    from nanovllm.bench.harness import use_scheduler

    llm = LLM(device="cpu", overlap_steps=True)
    llm.engine.add_request("ROMEO:", GREEDY)
    llm.engine.step()
    assert llm.engine.in_flight is not None
    use_scheduler(llm.engine, max_num_seqs=4)
    assert llm.engine.is_finished() and llm.engine.in_flight is None
    assert len(llm.generate(["x"], GREEDY, use_tqdm=False)[0].token_ids) == 12


def test_each_engine_states_what_it_does_in_its_config():
    from nanovllm.engine.llm_engine import LLMEngine
    from nanovllm.engine.overlap import OverlappedEngine

    assert LLMEngine("", device="cpu").config.overlap_steps is False  # "auto", resolved
    assert OverlappedEngine("", device="cpu").config.overlap_steps is True
    with pytest.raises(ValueError, match=r"^overlap_steps=True is invalid for LLMEngine, which "
                                         r"does not overlap its steps: make_engine"):
        LLMEngine("", device="cpu", overlap_steps=True)
    with pytest.raises(ValueError, match=r"^overlap_steps=False is invalid for "
                                         r"OverlappedEngine, which overlaps its steps"):
        OverlappedEngine("", device="cpu", overlap_steps=False)
