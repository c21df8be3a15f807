"""Greedy output does not depend on how the engine schedules the work.

The same prompts must give the same tokens whether they run alone or together, with the
prefix cache on or off, with long prompts split into chunks or not, and with a KV-cache
pool so small that sequences are preempted and recomputed. (On CPU the tiny model runs
in float32, so "the same" means token for token.) Seeded sampling is reproducible the
same way.
"""

import pytest
import torch

from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams
from tests.engine.fake_model import replay
from tests.engine.model_fixtures import tiny_checkpoint

GREEDY = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
SHARED_PREFIX = list(range(40, 90))  # 50 tokens: three full 16-token blocks and a bit


def make_prompts():
    generator = torch.Generator().manual_seed(3)
    tails = [torch.randint(0, 259, (n,), generator=generator).tolist() for n in (5, 30, 1, 70)]
    return [SHARED_PREFIX + tails[0], tails[1], SHARED_PREFIX + tails[2], tails[3],
            SHARED_PREFIX[:20]]


def run(prompts, params=GREEDY, **config):
    # a fixed pool and few sequences keep GPU runs small (several engines live at once)
    config = {"num_kvcache_blocks": 256, "max_num_seqs": 16, **config}
    llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", **config)
    return llm, [o.token_ids for o in llm.generate(prompts, params, use_tqdm=False)]


@pytest.fixture(scope="module")
def reference():
    """Every prompt alone, prefix caching and chunking off, an ample pool."""
    outputs = []
    for prompt in make_prompts():
        _, (tokens,) = run([prompt], enable_prefix_caching=False, enable_chunked_prefill=False)
        outputs.append(tokens)
    return outputs


def test_batch_of_many_equals_batch_of_one(reference):
    _, together = run(make_prompts(), enable_prefix_caching=False)
    assert together == reference


def test_prefix_cache_changes_nothing_but_work(reference):
    llm, first = run(make_prompts(), enable_prefix_caching=True)
    assert first == reference
    # a second call finds the shared prefix's full blocks in the cache
    again = llm.generate(make_prompts(), GREEDY, use_tqdm=False)
    assert [o.token_ids for o in again] == reference
    assert again[0].num_cached_tokens >= 48


def test_chunked_prefill_changes_nothing(reference):
    # a 32-token step budget cuts the 120- and 70-token prompts into several chunks
    _, chunked = run(make_prompts(), enable_chunked_prefill=True, max_num_batched_tokens=32)
    assert chunked == reference


def test_preemption_and_recompute_change_nothing(reference):
    # 10 blocks of 16 tokens hold the longest sequence (143 tokens) but not all five at once
    llm, squeezed = run(make_prompts(), num_kvcache_blocks=10, max_num_batched_tokens=64)
    assert squeezed == reference
    assert llm.engine.num_preemptions >= 2


def test_a_trace_of_a_real_run_replays_exactly_on_the_scheduler_alone():
    llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", num_kvcache_blocks=10,
              max_num_batched_tokens=64, overlap_steps=False)  # traces are the plain engine's
    trace = llm.engine.start_trace()
    llm.generate(make_prompts(), GREEDY, use_tqdm=False)
    recorded = trace.to_dict()
    assert any(step["batch"]["preempted_seq_ids"] for step in recorded["steps"])
    assert replay(recorded) == recorded


def test_seeded_sampling_is_reproducible_across_schedules():
    params = [SamplingParams(temperature=1.0, top_p=0.9, max_tokens=16, ignore_eos=True, seed=s)
              for s in range(5)]
    _, together = run(make_prompts(), params)
    _, squeezed = run(make_prompts(), params, num_kvcache_blocks=10, max_num_batched_tokens=64)
    alone = [run([p], [q])[1][0] for p, q in zip(make_prompts()[:2], params[:2], strict=True)]
    assert together == squeezed
    assert together[:2] == alone
    assert len({tuple(t) for t in together}) == 5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_change_nothing(reference):
    llm, graphed = run(make_prompts(), enforce_eager=False)
    assert llm.engine.model_runner.graphs is not None, "CUDA graph capture failed"
    _, eager = run(make_prompts(), enforce_eager=True)
    assert graphed == eager == reference


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_sample_the_same_tokens_as_eager():
    """Seeded, unseeded, truncated and greedy rows in one batch: the graph's buffers carry
    each row's scale and key, and top-p rows are resampled from the graph's logits."""
    params = [SamplingParams(temperature=0.8, max_tokens=20, ignore_eos=True, seed=7),
              SamplingParams(temperature=1.0, max_tokens=20, ignore_eos=True),
              SamplingParams(temperature=1.0, top_p=0.9, max_tokens=20, ignore_eos=True, seed=1),
              GREEDY, SamplingParams(temperature=0.6, top_k=5, max_tokens=20, ignore_eos=True)]
    _, graphed = run(make_prompts(), params, enforce_eager=False)
    _, eager = run(make_prompts(), params, enforce_eager=True)
    assert graphed == eager


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_graph_step_fills_the_static_buffers_with_the_step_and_its_padding():
    llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", num_kvcache_blocks=256,
              max_num_seqs=16, overlap_steps=False)  # steps run one at a time, by hand
    engine, runner = llm.engine, llm.engine.model_runner
    for prompt in make_prompts()[:3]:  # 3 sequences: the graph of size 4 runs, 1 padding row
        engine.add_request(prompt, SamplingParams(temperature=0.7, max_tokens=8, seed=3))
    while engine.scheduler.waiting:
        engine.step()  # the prompts
    batch = engine.scheduler.schedule()
    arrays = runner.fast.prepare(batch)
    assert runner.graphs.covers(arrays) and len(arrays.input_ids) == 3
    runner.run(batch)
    graphs, width = runner.graphs.static.on_device, arrays.block_tables.shape[1]
    assert graphs.input_ids[:3].tolist() == arrays.input_ids.tolist()
    assert graphs.positions[:3].tolist() == arrays.positions.tolist()
    assert graphs.slot_mapping[:4].tolist() == arrays.slot_mapping.tolist() + [-1]
    assert graphs.context_lens[:4].tolist() == arrays.context_lens.tolist() + [0]
    assert graphs.block_tables[:3, :width].tolist() == arrays.block_tables.tolist()
    assert graphs.scales[:3].tolist() == pytest.approx([1 / 0.7] * 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_one_token_prompt_chunk_among_decodes_runs_eagerly(reference):
    """A budget of 3 tokens: steps of two decodes and a one-token chunk of a longer prompt
    (every query one token long, one row not sampled) must not take the graph path."""
    llm, tokens = run(make_prompts(), enforce_eager=False, max_num_batched_tokens=3)
    assert llm.engine.model_runner.graphs is not None
    assert tokens == reference
