"""Turn each sequence's logits into its next token, with that request's own sampling rules.

For one row of logits and its request's parameters:

1. temperature 0 means greedy: take the arg-max, nothing random happens;
2. otherwise divide the logits by the temperature and take the softmax;
3. top-k keeps the k most likely tokens; top-p (nucleus) then keeps the *smallest* set of
   the most likely tokens whose mass (renormalised after top-k) reaches p, at least one;
4. draw from what is left with the *exponential race*: give every token an independent
   waiting time E ~ Exp(1) and pick the largest p / E. Token i wins with probability
   exactly p_i / sum(p), with no cumulative sums or normalisation, and removed tokens
   (p = 0) never win. In logarithms: the winner is ``argmax(logit / T - log E)``.

Randomness: each row's waiting times come from its own 64-bit *key*: ``E_v = -log U_v``,
with ``U_v`` from Philox, a counter-based generator, a pure function of (key, v). A request
with a seed gets the key ``seed_key(seed, step)`` (``step``: tokens generated so far), so
its output does not depend on its batch-mates, or on being preempted and recomputed.
Requests without a seed get keys from the engine's generator (seeded from ``Config.seed``),
so a given workload is reproducible.

On a GPU the race is one Triton kernel that makes the same random numbers inside it
(``kernels/sample.py``). Nothing here asks the GPU what the host knows ("does any row
truncate?" would stop the CPU until the GPU catches up): ``from_params`` works it out.
"""

import struct
from dataclasses import dataclass

import numpy as np
import torch
import xxhash
from torch import nn

from nanovllm.kernels.sample import UNIFORM_BITS, race_triton

MAX_SCALE = 1e6  # the largest 1 / temperature used
# Probabilities carry float32 rounding of ~1e-7; mass within this much of p counts as p.
NUCLEUS_TOLERANCE = 1e-6
MASK32 = 0xFFFFFFFF
PHILOX_KEY_A, PHILOX_KEY_B = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUND_A, PHILOX_ROUND_B = 0xD2511F53, 0xCD9E8D57
PHILOX_ROUNDS = 10


def seed_key(seed: int, step: int) -> int:
    """The key of a seeded request's random numbers at ``step``: xxh64 (seed 0) of ``seed``
    and ``step`` as two 8-byte little-endian unsigned ints, top bit cleared (keys are int64).
    Spelled out, unlike Python's ``hash`` of a tuple, so it is the same in every version and
    on every machine."""
    return xxhash.xxh64_intdigest(struct.pack("<QQ", seed, step)) & (2**63 - 1)


@dataclass
class SamplingValues:
    """The sampled rows' settings for one step: numpy arrays on the host (``from_params``),
    tensors on the device (``to``)."""

    scales: np.ndarray | torch.Tensor  # [rows] float32: 1 / temperature; 0 = greedy
    top_ks: np.ndarray | torch.Tensor  # [rows] int64; 0 = keep all
    top_ps: np.ndarray | torch.Tensor  # [rows] float32 in (0, 1]
    keys: np.ndarray | torch.Tensor  # [rows] int64: the key of each row's random numbers
    truncates: bool  # some row has top-k or top-p on

    @classmethod
    def from_params(cls, params: list, steps: list[int],
                    random_keys: np.random.Generator) -> "SamplingValues":
        """Rows with these parameters; ``steps``: tokens each has generated so far;
        ``random_keys`` draws the keys of the rows without a seed."""
        temperatures = np.array([p.temperature for p in params], dtype=np.float64)
        # 1 / T in float64, capped so that float32 logits * scale stay finite (a temperature
        # below 1 / MAX_SCALE is as good as greedy, but breaks ties the same way)
        scales = np.minimum(np.divide(1, temperatures, out=np.zeros_like(temperatures),
                                      where=temperatures > 0), MAX_SCALE)
        top_ks = np.array([max(p.top_k, 0) for p in params], dtype=np.int64)
        top_ps = np.array([p.top_p for p in params], dtype=np.float32)
        keys = random_keys.integers(0, 2**63, size=len(params), dtype=np.int64)
        for row, (p, step) in enumerate(zip(params, steps, strict=True)):
            if p.seed is not None:
                keys[row] = seed_key(p.seed, step)
        return cls(scales.astype(np.float32), top_ks, top_ps, keys,
                   truncates=bool((top_ks > 0).any() or (top_ps < 1).any()))

    def to(self, device: torch.device) -> "SamplingValues":
        def move(array):
            return torch.from_numpy(array).to(device, non_blocking=True)

        return SamplingValues(move(self.scales), move(self.top_ks), move(self.top_ps),
                              move(self.keys), self.truncates)


def philox(keys: torch.Tensor, count: int) -> torch.Tensor:
    """[rows] int64 keys -> [rows, count, 4] random uint32 values (held in int64): Philox-4x32
    with 10 rounds, the four numbers ``tl.randint4x(key, counter)`` makes for counters 0 to
    count - 1, so that the Triton kernel draws the same tokens."""
    c0 = torch.arange(count, dtype=torch.int64, device=keys.device).expand(len(keys), count)
    c1 = c2 = c3 = torch.zeros_like(c0)
    k0, k1 = (keys & MASK32)[:, None], ((keys >> 32) & MASK32)[:, None]
    for _ in range(PHILOX_ROUNDS):
        # int64 products wrap around, but their low 64 bits, all we use, are exact
        product_b, product_a = PHILOX_ROUND_B * c2, PHILOX_ROUND_A * c0
        c0, c2 = ((product_b >> 32) & MASK32) ^ c1 ^ k0, ((product_a >> 32) & MASK32) ^ c3 ^ k1
        c1, c3 = product_b & MASK32, product_a & MASK32
        k0, k1 = (k0 + PHILOX_KEY_A) & MASK32, (k1 + PHILOX_KEY_B) & MASK32
    return torch.stack([c0, c1, c2, c3], dim=-1)


def uniform(keys: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[rows, vocab_size] float32 in (0, 1): token v's number is number v % 4 of counter
    v // 4; U keeps the top 23 bits and sits mid-interval, so it is never 0 or 1."""
    words = philox(keys, -(-vocab_size // 4)).flatten(1)[:, :vocab_size]
    return ((words >> (32 - UNIFORM_BITS)).float() + 0.5) * 2.0 ** -UNIFORM_BITS


def race(logits: torch.Tensor, scales: torch.Tensor, keys: torch.Tensor,
         rows_at_once: int = 16) -> torch.Tensor:
    """The winner of each row (int64), ``rows_at_once`` rows at a time: Philox's int64
    temporaries are large. A greedy row (scale 0) takes the plain arg-max."""
    winners = []
    for i in range(0, len(logits), rows_at_once):
        rows, row_scales = logits[i:i + rows_at_once].float(), scales[i:i + rows_at_once]
        waiting = -torch.log(uniform(keys[i:i + rows_at_once], rows.shape[1]))  # E ~ Exp(1)
        scores = rows * row_scales[:, None] - torch.log(waiting)
        winners.append(torch.where(row_scales[:, None] == 0, rows, scores).argmax(dim=-1))
    return torch.cat(winners) if winners else torch.empty(0, dtype=torch.int64)


def truncated_probs(logits: torch.Tensor, top_ks: torch.Tensor,
                    top_ps: torch.Tensor) -> torch.Tensor:
    """Softmax of each row with top-k, then top-p, applied; removed tokens get probability 0."""
    probs = logits.softmax(dim=-1)
    vocab_size = probs.shape[-1]
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
    def forward(self, logits: torch.Tensor, values: SamplingValues) -> torch.Tensor:
        """logits: [rows, vocab] -> sampled token ids: [rows] (int64)."""
        scales = values.scales
        if values.truncates:  # race over the kept tokens' log-probabilities instead
            tempered = logits.float() * torch.where(scales == 0, 1.0, scales)[:, None]
            logits = truncated_probs(tempered, values.top_ks, values.top_ps).log()
            scales = (scales > 0).float()  # a greedy row's arg-max is unchanged by all this
        if logits.is_cuda:
            return race_triton(logits, scales, values.keys)
        return race(logits, scales, values.keys)
