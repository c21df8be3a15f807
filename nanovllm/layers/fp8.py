"""An 8-bit KV cache: keys and values as float8 (e4m3), each row with its own scale.

A row is one token's keys (or values) for one kv head: ``head_dim`` numbers. It is stored
as ``row / s`` rounded to e4m3, with ``s = max|row| / 448``: 448 is e4m3's largest number,
so every row spreads over the format's whole range whatever its size, and reading it back
is one multiplication by ``s``. e4m3 keeps 3 bits of mantissa, so a stored number is off by
at most 1/16 of its size (numbers under 1/28,672 of the row's largest lose more: scaled,
they fall below e4m3's smallest normal number, 2**-6 = 448 / 28,672).

Why a scale per row, computed as the row is written: nothing has to be calibrated before
the engine starts, a row never changes once written (a scale per block would have to grow,
and re-round the block, as later tokens arrive), and one large key in a head cannot crush the
precision of every other token's, as one fixed scale for the whole cache would (the
alternative ``source/_records/bench/quality/`` measures). It costs one float32 per row:
4 bytes per 128 for Qwen3's heads, 3%.
"""

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448.0
SCALE_BYTES = 4  # one float32 per row


def quantize(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` [..., head_dim] -> (e4m3 [..., head_dim], float32 scales [...])."""
    largest = rows.abs().amax(dim=-1, keepdim=True).float().clamp_min(
        torch.finfo(torch.float32).tiny)  # a zero row: 0s
    # a true division on every device (by a number, a GPU multiplies by its reciprocal)
    scales = largest / torch.full_like(largest, FP8_MAX)
    return (rows.float() / scales).to(FP8), scales.squeeze(-1)


def dequantize(stored: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Float32 rows from what ``quantize`` stored."""
    return stored.float() * scales.unsqueeze(-1)
