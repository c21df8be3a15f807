"""Prompt log-probabilities (``SamplingParams(prompt_logprobs=True)``, ``engine/scoring.py``).

They are checked against Hugging Face transformers' logits on the same weights, and shown
not to depend on how the engine computes the prompt: in one step or in chunks, alone or in a
batch, after a preemption, with the prefix cache holding the same prompt.
"""

import math

import pytest
import torch

from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams
from tests.engine.model_fixtures import tiny_checkpoint

transformers = pytest.importorskip("transformers")

SCORE = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=True)
LENGTHS = [1, 2, 7, 16, 17, 40]


def prompts(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 259, (n,), generator=generator).tolist() for n in LENGTHS]


def hf_prompt_logprobs(folder, tokens):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.inference_mode():
        logits = model(torch.tensor([tokens])).logits[0].float()
    picked = logits[:-1].log_softmax(dim=-1).gather(1, torch.tensor(tokens[1:])[:, None])
    return [None] + picked.squeeze(1).tolist()


def scored(llm, token_lists):
    return [o.prompt_logprobs for o in llm.generate(token_lists, SCORE, use_tqdm=False)]


@pytest.fixture(scope="module")
def folder():
    return str(tiny_checkpoint("qwen3"))


@pytest.fixture(scope="module")
def expected(folder):
    return [hf_prompt_logprobs(folder, tokens) for tokens in prompts()]


def close(a, b, tolerance=1e-4):
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and abs(x - y) <= tolerance)
        for x, y in zip(a, b, strict=True))


def test_prompt_logprobs_match_transformers_in_one_step(folder, expected):
    llm = LLM(folder, dtype="float32", device="cpu", enable_chunked_prefill=False)
    got = scored(llm, prompts())
    assert [len(g) for g in got] == LENGTHS
    assert all(close(g, e) for g, e in zip(got, expected, strict=True)), (got, expected)
    assert got[0] == [None]  # a one-token prompt has nothing to score


def test_chunks_batches_and_the_prefix_cache_change_nothing(folder, expected):
    # 8 tokens a step: the 40-token prompt takes five chunks, others share steps with it
    llm = LLM(folder, dtype="float32", device="cpu", max_num_batched_tokens=8,
              enable_prefix_caching=True)
    first = llm.generate(prompts(), SCORE, use_tqdm=False)
    again = llm.generate(prompts(), SCORE, use_tqdm=False)  # the same prompts, now cached
    for outputs in (first, again):
        assert all(close(o.prompt_logprobs, e) for o, e in zip(outputs, expected, strict=True))
    assert all(o.num_cached_tokens == 0 for o in again)  # computed whole, never cached
    # without prompt_logprobs the second call would have hit the cache
    plain = SamplingParams(temperature=0.0, max_tokens=1)
    llm.generate(prompts(), plain, use_tqdm=False)
    hits = llm.generate(prompts(), plain, use_tqdm=False)
    assert hits[-1].num_cached_tokens == 32 and hits[-1].prompt_logprobs is None


def test_a_preempted_prompt_is_scored_again_the_same(folder, expected):
    # 6 blocks of 16 tokens: the batch cannot hold every prompt and its completion at once
    llm = LLM(folder, dtype="float32", device="cpu", num_kvcache_blocks=6,
              max_num_batched_tokens=16)
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True,
                            prompt_logprobs=True)
    outputs = llm.generate(prompts(), params, use_tqdm=False)
    assert llm.engine.num_preemptions >= 1
    assert all(close(o.prompt_logprobs, e) for o, e in zip(outputs, expected, strict=True))


def test_perplexity_is_the_mean_of_the_scores(folder, expected):
    tokens = prompts()[-1]
    (out,) = LLM(folder, dtype="float32", device="cpu").generate([tokens], SCORE,
                                                                  use_tqdm=False)
    mean = sum(out.prompt_logprobs[1:]) / (len(tokens) - 1)
    assert math.exp(-mean) == pytest.approx(math.exp(-sum(expected[-1][1:]) / 39), rel=1e-4)


def test_prompt_logprobs_are_refused_where_they_are_not_computed():
    with pytest.raises(ValueError, match=r"^prompt_logprobs='yes' is invalid: True or False$"):
        SamplingParams(prompt_logprobs="yes")
    llm = LLM(device="cpu", overlap_steps=True)
    (out,) = llm.generate(["ROMEO:"], SCORE, use_tqdm=False)
    assert out.finish_reason == "error"
    assert out.error.startswith("prompt_logprobs=True needs the plain engine in one process")
