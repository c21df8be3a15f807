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

Randomness: a request with a seed gets noise from a generator seeded by (seed, number of
tokens it has generated so far), so its output does not depend on which other requests
share its batches, or on being preempted and recomputed. Requests without a seed share
the engine's generator (seeded from ``Config.seed``), reproducible for a given workload.

Speed: the sampler runs every step, over [rows, vocabulary] float32 arrays (256 x
151,936 x 4 bytes = 156 MB for Qwen3-0.6B), so it never asks the GPU a question whose
answer the host already knows ("is every row greedy?", "does any row truncate?" would
each stop the CPU until the GPU catches up): ``SamplingTensors.from_params`` works
them out from the parameters. Its two heavy pieces, the tempered softmax and the race,
are plain functions that the model runner may hand to ``torch.compile`` (see
``engine/torch_compile.py``), which fuses each into one pass over memory.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# Probabilities carry float32 rounding of ~1e-7; mass within this much of p counts as p.
NUCLEUS_TOLERANCE = 1e-6


@dataclass
class SamplingTensors:
    temperatures: torch.Tensor  # [rows] float; 0 = greedy
    top_ks: torch.Tensor  # [rows] int; 0 = keep all
    top_ps: torch.Tensor  # [rows] float in (0, 1]
    seeds: list  # [rows] int or None
    steps: list  # [rows] tokens the request has generated so far
    # Facts about all rows, known on the host; None means "read them off the tensors".
    all_greedy: bool | None = None
    truncates: bool | None = None  # some row has top-k or top-p on

    @classmethod
    def from_params(cls, params: list, steps: list[int], device) -> "SamplingTensors":
        # Built with numpy, several times faster than torch.tensor on nested lists, and first in
        # float64, exact for every float setting, so that the two facts below are those of the
        # settings themselves (float32 could round a top_p just below 1 up to 1).
        table = np.array([[p.temperature for p in params], [p.top_k for p in params],
                          [p.top_p for p in params]], dtype=np.float64)
        table[1] = np.maximum(table[1], 0)  # top_k -1 means off, like 0
        host = torch.from_numpy(table.astype(np.float32))
        if torch.device(device).type == "cuda":  # one copy from pinned memory, no wait
            host = host.pin_memory()
        values = host.to(device, non_blocking=True)
        return cls(temperatures=values[0], top_ks=values[1].long(), top_ps=values[2],
                   seeds=[p.seed for p in params], steps=list(steps),
                   all_greedy=not table[0].any(),  # every temperature is 0
                   truncates=bool((table[1] > 0).any() or (table[2] < 1).any()))


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


def exponential_noise(shape: torch.Size, seeds: list, steps: list, device,
                      generator: torch.Generator | None) -> torch.Tensor:
    """Exp(1) noise, one row per request; seeded rows depend only on (seed, step)."""
    noise = torch.empty(shape, device=device).exponential_(generator=generator)
    for row, (seed, step) in enumerate(zip(seeds, steps, strict=True)):
        if seed is not None:
            own = torch.Generator(device=device).manual_seed(hash((seed, step)) & (2**63 - 1))
            noise[row].exponential_(generator=own)
    return noise


def tempered_softmax(logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """softmax(logits / temperature) of each row, in float32."""
    return (logits.float() / temperatures[:, None]).softmax(dim=-1)


def race(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The exponential race: the token with the largest p / E wins."""
    return (probs / noise).argmax(dim=-1)


class Sampler(nn.Module):
    # The heavy pieces, looked up on the instance so that torch_compile.py can swap them.
    tempered_softmax = staticmethod(tempered_softmax)
    race = staticmethod(race)

    def forward(self, logits: torch.Tensor, sampling: SamplingTensors,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """logits: [rows, vocab] -> sampled token ids: [rows] (int64)."""
        greedy = logits.argmax(dim=-1)  # float32 would not change it: the cast is exact
        is_greedy = sampling.temperatures == 0
        all_greedy = sampling.all_greedy
        if all_greedy is None:
            all_greedy = bool(is_greedy.all())
        if all_greedy:
            return greedy
        temperatures = torch.where(is_greedy, 1.0, sampling.temperatures)
        if sampling.truncates is False:
            probs = self.tempered_softmax(logits, temperatures)
        else:
            probs = truncated_probs(logits.float() / temperatures[:, None], sampling.top_ks,
                                    sampling.top_ps)
        noise = exponential_noise(probs.shape, sampling.seeds, sampling.steps, logits.device,
                                  generator)
        return torch.where(is_greedy, greedy, self.race(probs, noise))
