"""The exponential race (``layers/sampler.py``) as one kernel, random numbers made inside it.

The race's winner is ``argmax_v (logit_v / T - log E_v)``, so the softmax's
normalisation is never needed: one pass over the logits, keeping a running best, is the
whole sampler. A greedy row (temperature 0) skips the noise and takes the plain arg-max.
A token removed by top-k or top-p arrives with logit -inf and can never win.

``E_v = -log U_v``, and ``U_v`` comes from Philox, a *counter-based* generator: the v-th
number of a row is a pure function of (the row's 64-bit key, v). Nothing is stored or
carried from step to step, any program can make any row's numbers, and a step's
sampling can live in a CUDA graph, since the keys arrive in a tensor like any other
input. Philox turns (key, counter) into four 32-bit numbers at once, so token ``v``
takes number ``v % 4`` of counter ``v // 4``: a quarter of the arithmetic of one call per
token, which matters because at 256 rows x 151,936 tokens the random numbers, not the
reading of the logits, would be most of the kernel's time. ``layers/sampler.py`` makes
exactly these numbers in torch, so both draw the same tokens (up to ties in the last bit
of a float32 ``log``).
"""

from __future__ import annotations

import torch

from nanovllm.kernels.decode_attention import multiprocessor_count
from nanovllm.kernels.triton_support import jit, require_triton, tl

UNIFORM_BITS = 23  # float32 holds (2**23 - 1) + 0.5 exactly: U is never rounded to 1
BLOCK_V = 2048  # tokens a program handles per iteration
MAX_PIECES = 32  # programs sharing one row, when there are few rows


@jit
def race_step(row_ptr, tokens, randoms, scale, vocab_size, best_score, best_token,
              UNIFORM_BITS: tl.constexpr):
    """Score ``tokens`` (one per lane) and keep each lane's best so far."""
    valid = tokens < vocab_size
    score = tl.load(row_ptr + tokens, mask=valid, other=float("-inf")).to(tl.float32)
    if scale != 0:  # not greedy: add the race's noise, -log E
        bits = (randoms >> (32 - UNIFORM_BITS)).to(tl.float32)
        uniform = (bits + 0.5) * (1.0 / (1 << UNIFORM_BITS))
        score = tl.where(valid, score * scale - tl.log(-tl.log(uniform)), float("-inf"))
    # Strictly better: a lane sees its tokens in increasing order, so a tie keeps the first.
    better = score > best_score
    return tl.where(better, score, best_score), tl.where(better, tokens, best_token)


@jit
def race_kernel(logits_ptr, scales_ptr, keys_ptr, best_score_ptr, best_token_ptr,
                vocab_size, logits_stride, piece_len,
                BLOCK_V: tl.constexpr, UNIFORM_BITS: tl.constexpr):
    # Program (row, piece) runs the race over tokens [piece * piece_len, +piece_len) of
    # its row and writes the best score and token; the caller picks among the pieces.
    # Lane i of an iteration looks at the 4 tokens of one Philox counter: 4c, ..., 4c + 3.
    row, piece = tl.program_id(0), tl.program_id(1)
    scale = tl.load(scales_ptr + row)
    key = tl.load(keys_ptr + row)
    row_ptr = logits_ptr + row * logits_stride
    best_score = tl.full([BLOCK_V // 4], float("-inf"), tl.float32)
    best_token = tl.full([BLOCK_V // 4], 0, tl.int32)
    first = piece * piece_len
    for start in range(first, first + piece_len, BLOCK_V):
        counters = start // 4 + tl.arange(0, BLOCK_V // 4)
        r0, r1, r2, r3 = tl.randint4x(key, counters)
        best_score, best_token = race_step(row_ptr, 4 * counters, r0, scale, vocab_size,
                                           best_score, best_token, UNIFORM_BITS)
        best_score, best_token = race_step(row_ptr, 4 * counters + 1, r1, scale, vocab_size,
                                           best_score, best_token, UNIFORM_BITS)
        best_score, best_token = race_step(row_ptr, 4 * counters + 2, r2, scale, vocab_size,
                                           best_score, best_token, UNIFORM_BITS)
        best_score, best_token = race_step(row_ptr, 4 * counters + 3, r3, scale, vocab_size,
                                           best_score, best_token, UNIFORM_BITS)
    # Each lane kept its own best; the lane winner with the smallest token wins ties.
    top = tl.max(best_score, axis=0)
    token = tl.min(tl.where(best_score == top, best_token, vocab_size), axis=0)
    pieces = tl.num_programs(1)
    tl.store(best_score_ptr + row * pieces + piece, top)
    tl.store(best_token_ptr + row * pieces + piece, token)


def race_triton(logits: torch.Tensor, scales: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    require_triton()
    rows, vocab_size = logits.shape
    assert logits.stride(1) == 1, "each row of logits must be contiguous"
    # Split rows into pieces until the grid covers every multiprocessor about twice.
    # Depends on the number of rows only, so a CUDA graph of the step stays valid.
    pieces = max(1, min(MAX_PIECES, -(-2 * multiprocessor_count(logits.device) // rows)))
    piece_len = -(-vocab_size // (pieces * BLOCK_V)) * BLOCK_V
    best_score = torch.empty(rows, pieces, dtype=torch.float32, device=logits.device)
    best_token = torch.empty(rows, pieces, dtype=torch.int32, device=logits.device)
    race_kernel[(rows, pieces)](logits, scales, keys, best_score, best_token, vocab_size,
                                logits.stride(0), piece_len, BLOCK_V=BLOCK_V,
                                UNIFORM_BITS=UNIFORM_BITS, num_warps=8)
    winner = best_score.argmax(dim=1, keepdim=True)  # the first piece wins ties
    return best_token.gather(1, winner).squeeze(1).long()
