"""The sampler draws from exactly the truncated distribution each request asks for."""

import math

import numpy as np
import pytest
import torch
import xxhash

from nanovllm.layers.sampler import Sampler, SamplingValues, truncated_probs
from nanovllm.sampling_params import SamplingParams

LOGITS = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])
# chi-square critical values at the 0.999 quantile, by degrees of freedom
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32}


def expected_distribution(logits: list[float], temperature: float, top_k: int, top_p: float):
    """Written out by hand, independently of the sampler: softmax, top-k, then nucleus."""
    weights = [math.exp(x / temperature) for x in logits]
    probs = [w / sum(weights) for w in weights]
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    candidates = order[:top_k] if top_k > 0 else order
    total = sum(probs[i] for i in candidates)
    nucleus, mass = [], 0.0
    for i in candidates:
        if nucleus and mass >= top_p - 1e-9:
            break
        nucleus.append(i)
        mass += probs[i] / total
    kept = sum(probs[i] for i in nucleus)
    return {i: probs[i] / kept for i in nucleus}


def sampling(rows: int, temperature=1.0, top_k=0, top_p=1.0, seeds=None, steps=None,
             key_seed=1234):
    params = [SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
              for seed in seeds or [None] * rows]
    return SamplingValues.from_params(params, steps or [0] * rows,
                                      np.random.default_rng(key_seed)).to("cpu")


@pytest.mark.parametrize("temperature, top_k, top_p", [
    (0.7, 0, 1.0), (1.0, 3, 1.0), (1.3, 0, 0.8), (0.9, 5, 0.7), (2.0, 0, 0.95)])
def test_empirical_frequencies_match_truncated_distribution(temperature, top_k, top_p):
    draws = 20000
    tokens = Sampler()(LOGITS.expand(draws, -1), sampling(draws, temperature, top_k, top_p))
    counts = torch.bincount(tokens, minlength=len(LOGITS)).tolist()
    expected = expected_distribution(LOGITS.tolist(), temperature, top_k, top_p)
    outside = {i: c for i, c in enumerate(counts) if i not in expected and c}
    assert not outside, f"tokens outside the allowed set were drawn: {outside}"
    chi2 = sum((counts[i] - draws * p) ** 2 / (draws * p) for i, p in expected.items())
    degrees = len(expected) - 1
    if degrees:
        assert chi2 < CHI2_999[degrees], (chi2, counts, expected)


def test_seeded_rows_follow_the_distribution_too():
    draws = 4000
    tokens = Sampler()(LOGITS.expand(draws, -1),
                       sampling(draws, 1.0, 0, 0.9, seeds=list(range(draws))))
    counts = torch.bincount(tokens, minlength=len(LOGITS)).tolist()
    expected = expected_distribution(LOGITS.tolist(), 1.0, 0, 0.9)
    assert all(counts[i] == 0 for i in range(len(LOGITS)) if i not in expected)
    chi2 = sum((counts[i] - draws * p) ** 2 / (draws * p) for i, p in expected.items())
    assert chi2 < CHI2_999[len(expected) - 1]


@pytest.mark.parametrize("top_p, allowed", [
    (0.5, {0}), (0.75, {0, 1}), (0.7501, {0, 1, 2}), (0.875, {0, 1, 2}), (1.0, {0, 1, 2, 3}),
    (1e-9, {0})])
def test_nucleus_is_the_smallest_set_reaching_p(top_p, allowed):
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    probs = truncated_probs(logits, torch.tensor([0]), torch.tensor([top_p]))
    assert set(torch.nonzero(probs[0]).flatten().tolist()) == allowed


def test_top_k_then_top_p_renormalises_between_them():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    # after top-k=3 the masses are 4/7, 2/7, 1/7: p = 0.8 needs the first two only
    probs = truncated_probs(logits, torch.tensor([3]), torch.tensor([0.8]))
    assert torch.nonzero(probs[0]).flatten().tolist() == [0, 1]


def test_per_request_parameters_in_one_batch():
    rows = torch.stack([LOGITS, LOGITS, LOGITS, LOGITS.flip(0)])
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=5.0, top_k=1),
              SamplingParams(temperature=5.0, top_p=1e-6), SamplingParams(temperature=0.0)]
    for seed in range(20):
        tokens = Sampler()(rows, SamplingValues.from_params(
            params, [0] * 4, np.random.default_rng(seed)).to("cpu"))
        # greedy; top-k 1; a tiny nucleus; greedy on the reversed row
        assert tokens.tolist() == [0, 0, 0, len(LOGITS) - 1]


def test_a_seeded_request_samples_the_same_whatever_its_batch():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    seeds, steps = [7, None, 7, 8, None, 7], [3, 0, 3, 3, 0, 4]
    together = Sampler()(logits[[0] * 6], sampling(6, seeds=seeds, steps=steps, key_seed=1))
    alone = Sampler()(logits[:1], sampling(1, seeds=[7], steps=[3], key_seed=99))
    assert together[0] == together[2] == alone[0]  # same seed, same step, same logits
    draws = [Sampler()(logits[:1], sampling(1, seeds=[7], steps=[s])).item() for s in range(40)]
    assert len(set(draws)) > 5  # the step moves the random stream forward


def test_the_race_needs_no_softmax_and_matches_it():
    """Racing on logit / T equals racing on log softmax(logit / T): the same keys, the same token."""
    logits = torch.randn(64, 300, generator=torch.Generator().manual_seed(3)) * 4
    tensors = sampling(64, temperature=0.7)
    direct = Sampler()(logits, tensors)
    log_probs = (logits / 0.7).log_softmax(dim=-1)
    via_softmax = Sampler()(log_probs, sampling(64, temperature=1.0))
    assert torch.equal(direct, via_softmax)


def test_keys_of_unseeded_rows_come_from_the_engine_generator():
    a, b = sampling(4, key_seed=5), sampling(4, key_seed=5)
    assert torch.equal(a.keys, b.keys) and len(set(a.keys.tolist())) == 4
    assert not torch.equal(a.keys, sampling(4, key_seed=6).keys)
    seeded = sampling(2, seeds=[7, 7], steps=[3, 3], key_seed=5)
    # xxh64 of seed 7 and step 3 as two 8-byte little-endian ints, top bit cleared
    spelled_out = xxhash.xxh64_intdigest(bytes([7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]))
    assert seeded.keys.tolist() == [spelled_out & (2**63 - 1)] * 2 == [2369583192492125448] * 2
