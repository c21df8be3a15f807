"""Turn each sequence's logits into its next token, with that request's own sampling rules.

For one row of logits and its request's parameters:

1. temperature 0 means greedy: take the arg-max, nothing random happens;
2. otherwise divide the logits by the temperature and take the softmax;
3. top-k keeps the k most likely tokens; top-p (nucleus) then keeps the *smallest* set
   of the most likely tokens whose probability mass (renormalised after top-k)
   reaches p. The most likely token is always kept;
4. draw from what is left with the *exponential race*: give every token an independent
   waiting time E ~ Exp(1) and pick the token with the largest p / E. Token i wins with
   probability exactly p_i / sum(p), so no cumulative sums or normalisation are needed,
   and removed tokens (p = 0) can never win.

Randomness: each row's waiting times come from its own *key*, a 64-bit number that
fixes them completely (``kernels/sample.py`` makes them with Philox, a counter-based
generator, inside the kernel). A request with a seed gets the key ``seed_key(seed, step)``
(``step``: tokens it has generated so far), so its output does not depend on which other
requests share its batches, or on being preempted and recomputed. Requests without a
seed get keys from the engine's own generator (seeded from ``Config.seed``), so a given
workload is reproducible.

Speed: the sampler runs every step, over [rows, vocabulary] logits (256 x 151,936 for
Qwen3-0.6B), so in the common case (no top-k, no top-p) it is *one* kernel that reads
the logits once and never writes a probability: the race needs no softmax (see
``kernels/sample.py``). Nothing in it asks the GPU a question whose answer the host
already knows ("does any row truncate?" would stop the CPU until the GPU catches up):
``SamplingArrays.from_params`` works that out from the parameters. And since the keys
are an input tensor, a decode step's sampling is captured in its CUDA graph with the
model (``engine/cuda_graph.py``).
"""

import struct
from dataclasses import dataclass

import numpy as np
import torch
import xxhash
from torch import nn

from nanovllm.engine.model_inputs import copy_to
from nanovllm.kernels.sample import exponential_race

MAX_SCALE = 1e6  # the largest 1 / temperature used

# Probabilities carry float32 rounding of ~1e-7; mass within this much of p counts as p.
NUCLEUS_TOLERANCE = 1e-6


def seed_key(seed: int, step: int) -> int:
    """The key of a seeded request's random numbers at ``step``: xxh64 (seed 0) of ``seed``
    and ``step`` as two 8-byte little-endian unsigned ints, top bit cleared (keys are int64).
    Spelled out, unlike Python's ``hash`` of a tuple, so it is the same in every version and
    on every machine."""
    return xxhash.xxh64_intdigest(struct.pack("<QQ", seed, step)) & (2**63 - 1)


@dataclass
class SamplingTensors:
    scales: torch.Tensor  # [rows] float32: 1 / temperature; 0 = greedy
    top_ks: torch.Tensor  # [rows] int; 0 = keep all
    top_ps: torch.Tensor  # [rows] float in (0, 1]
    keys: torch.Tensor  # [rows] int64: the key of each row's random numbers this step
    truncates: bool  # some row has top-k or top-p on (known on the host)

    @classmethod
    def from_params(cls, params: list, steps: list[int], keys: np.random.Generator,
                    device, staging=None) -> "SamplingTensors":
        """``SamplingArrays.from_params``, then on ``device``."""
        return SamplingArrays.from_params(params, steps, keys).to_tensors(device, staging)


@dataclass
class SamplingArrays:
    """The sampling tensors' values on the host: what a CUDA graph's buffers are filled with."""
    floats: np.ndarray  # [3, rows] float32: scales, top-k (as a float), top-p
    keys: np.ndarray  # [rows] int64
    truncates: bool

    @classmethod
    def from_params(cls, params: list, steps: list[int],
                    keys: np.random.Generator) -> "SamplingArrays":
        """Values for rows with these parameters; ``steps``: tokens each has generated.

        ``keys`` draws the keys of the rows without a seed. Everything is worked out on
        the host, so nothing waits for the GPU.
        """
        table = np.array([(p.temperature, p.top_k, p.top_p) for p in params],
                         dtype=np.float64).reshape(-1, 3).T
        temperatures, top_ks, top_ps = table
        # 1 / T in float64, capped so that float32 logits * scale stay finite (a temperature
        # below 1 / MAX_SCALE is as good as greedy, but breaks ties the same way)
        scales = np.minimum(np.divide(1, temperatures, out=np.zeros_like(temperatures),
                                      where=temperatures > 0), MAX_SCALE)
        floats = np.stack([scales, np.maximum(top_ks, 0), top_ps]).astype(np.float32)
        row_keys = keys.integers(0, 2**63, size=len(params), dtype=np.int64)
        for row, (p, step) in enumerate(zip(params, steps, strict=True)):
            if p.seed is not None:
                row_keys[row] = seed_key(p.seed, step)
        return cls(floats=floats, keys=row_keys,
                   truncates=bool((top_ks > 0).any() or (top_ps < 1).any()))

    def to_tensors(self, device, staging=None) -> SamplingTensors:
        """On ``device``: one copy per dtype (through ``staging``, the runner's pinned
        buffers, see ``engine/model_inputs.py``)."""
        device = torch.device(device)
        floats = copy_to(device, self.floats, staging, "sampling parameters")
        keys = copy_to(device, self.keys, staging, "sampling keys")
        return SamplingTensors(scales=floats[0], top_ks=floats[1].long(), top_ps=floats[2],
                               keys=keys, truncates=self.truncates)


def truncated_probs(logits: torch.Tensor, top_ks: torch.Tensor,
                    top_ps: torch.Tensor) -> torch.Tensor:
    """Softmax of each row with top-k, then top-p, applied; removed tokens get probability 0."""
    probs = logits.softmax(dim=-1)
    vocab_size = probs.shape[-1]
    if bool((top_ks == 0).all()) and bool((top_ps >= 1).all()):
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    rank = torch.arange(vocab_size, device=probs.device)
    keep = rank[None, :] < torch.where(top_ks > 0, top_ks, vocab_size)[:, None]
    sorted_probs = sorted_probs * keep
    sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of strictly likelier tokens
    reached = mass_before >= top_ps[:, None] - NUCLEUS_TOLERANCE
    keep &= ~reached | (top_ps[:, None] >= 1)
    keep[:, 0] = True
    kept = torch.zeros_like(keep).scatter(1, order, keep)
    return probs.masked_fill(~kept, 0.0)


class Sampler(nn.Module):
    def forward(self, logits: torch.Tensor, sampling: SamplingTensors) -> torch.Tensor:
        """logits: [rows, vocab] -> sampled token ids: [rows] (int64)."""
        scales = sampling.scales
        if sampling.truncates:  # race over the kept tokens' log-probabilities instead
            tempered = logits.float() * torch.where(scales == 0, 1.0, scales)[:, None]
            logits = truncated_probs(tempered, sampling.top_ks, sampling.top_ps).log()
            scales = (scales > 0).float()  # a greedy row's arg-max is unchanged by all this
        return exponential_race(logits, scales, sampling.keys)
