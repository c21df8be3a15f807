"""Matrix products of a few rows at the speed of reading the weights: ``y = x W^T`` when ``x``
has at most 16 rows (a decode step of up to 16 sequences).

Such a product does two multiply-adds per weight it reads, so its time is the time to read
``W`` once. The library kernels chosen for one row read Qwen3-0.6B's weights at about a
quarter of an H200's bandwidth (``source/_records/bench/README.md``): too few programs for
the chip, or tiles shaped for large batches. Here:

* a program owns ``BLOCK_N`` output features and reads their weights once, for all rows,
  ``BLOCK_K`` inputs at a time (``tl.dot`` on rows padded to 16, which costs nothing
  extra: the weights' bytes, not the arithmetic, set the time);
* ``SPLIT_K`` programs share one block of outputs, each summing its own slice of the
  inputs, so that even a narrow matrix gives every multiprocessor work. Their partial sums
  (float32) are added by ``torch.sum`` in a fixed order: no atomics, so the same inputs give
  the same bits on every run.

``gemv_config`` picks the tiles from the matrix's shape and the GPU's size. The torch
reference is ``torch.nn.functional.linear``; ``use_gemv`` routes a model's small products
here (``ModelRunner``, with ``Config.gemv_max_rows``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from nanovllm.kernels.triton_support import jit, require_triton, tl, triton

MAX_ROWS = 16  # rows padded to 16 for tl.dot


@jit
def gemv_kernel(x_ptr, w_ptr, partial_ptr, M, N, K, x_stride, w_stride,
                ROWS: tl.constexpr, K_PER_SPLIT: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Program (n, s): outputs [n * BLOCK_N, (n + 1) * BLOCK_N), inputs of split s.
    columns = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    split = tl.program_id(1)
    rows = tl.arange(0, ROWS)
    acc = tl.zeros((ROWS, BLOCK_N), dtype=tl.float32)
    for start in range(0, K_PER_SPLIT, BLOCK_K):
        ks = split * K_PER_SPLIT + start + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows[:, None] * x_stride + ks[None, :],
                    mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        w = tl.load(w_ptr + columns[:, None].to(tl.int64) * w_stride + ks[None, :],
                    mask=(columns[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(x, tl.trans(w), input_precision=DOT_PRECISION)
    out = partial_ptr + split * M * N + rows[:, None] * N + columns[None, :]
    tl.store(out, acc, mask=(rows[:, None] < M) & (columns[None, :] < N))


@functools.cache
def gemv_config(n: int, k: int, num_sms: int) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, SPLIT_K): 32 outputs a program, 128 inputs a load, and the
    inputs split until about two programs per multiprocessor (at least 256 inputs each)."""
    block_n, block_k = 32, 128
    programs = -(-n // block_n)
    split = 1
    while programs * split < 2 * num_sms and k // (2 * split) >= 256:
        split *= 2
    return block_n, block_k, split


def gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
         config: tuple[int, int, int] | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for ``x`` of at most 16 rows; ``config`` overrides
    ``gemv_config`` (the tests try every kind of tile)."""
    require_triton()
    m, k = x.shape
    n = weight.shape[0]
    assert m <= MAX_ROWS and weight.shape[1] == k, (x.shape, weight.shape)
    assert x.stride(1) == 1 and weight.stride(1) == 1, "rows must be contiguous"
    if config is None:
        sms = (torch.cuda.get_device_properties(x.device).multi_processor_count
               if x.is_cuda else 4)
        config = gemv_config(n, k, sms)
    block_n, block_k, split = config
    k_per_split = triton.cdiv(triton.cdiv(k, split), block_k) * block_k
    partial = torch.empty(split, m, n, dtype=torch.float32, device=x.device)
    gemv_kernel[(triton.cdiv(n, block_n), split)](
        x, weight, partial, m, n, k, x.stride(0), weight.stride(0),
        ROWS=MAX_ROWS, K_PER_SPLIT=k_per_split, BLOCK_N=block_n, BLOCK_K=block_k,
        DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32")  # as the attention's
    y = partial.sum(0) if split > 1 else partial[0]
    if bias is not None:
        y += bias
    return y.to(x.dtype)


def small_product(max_rows: int, x: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """A layer's ``product``: this kernel for at most ``max_rows`` rows of 16-bit numbers on a
    GPU, ``F.linear`` otherwise (float32 weights are twice the bytes and the engine runs them
    for exactness, not speed)."""
    if (x.dim() == 2 and x.shape[0] <= max_rows and x.is_cuda and x.dtype == weight.dtype
            and weight.dtype in (torch.bfloat16, torch.float16)):
        return gemv(x, weight, bias)
    return F.linear(x, weight, bias)


def use_gemv(model: torch.nn.Module, max_rows: int) -> None:
    """Give every layer of ``model`` with a ``product`` (the linear layers and the LM head)
    this kernel for its products of at most ``max_rows`` rows."""
    assert 1 <= max_rows <= MAX_ROWS, max_rows
    for module in model.modules():
        if hasattr(type(module), "product"):
            module.product = functools.partial(small_product, max_rows)
