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
  (float32) are added by a second small kernel in a fixed order: no atomics, so the same
  inputs give the same bits on every run. With one split the kernel writes the output
  itself, in the inputs' dtype, bias included.

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
# Tiles, warps and pipeline depth: one setting for every product of Qwen3-0.6B, within 4% of
# the fastest tile for each on an H200 (source/_records/bench/h200-overlapped/README.md);
# each split's slice at least 2 x BLOCK_K.
GEMV_TILE = {"BLOCK_N": 32, "BLOCK_K": 128, "num_warps": 4, "num_stages": 4}


@jit
def gemv_kernel(x_ptr, w_ptr, bias_ptr, out_ptr, M, N, K, x_stride, w_stride,
                ROWS: tl.constexpr, K_PER_SPLIT: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # Program (n, s): outputs [n * BLOCK_N, (n + 1) * BLOCK_N), inputs of split s. With
    # one split, out_ptr is the output; with several, a float32 [splits, M, N] of partials.
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
    if HAS_BIAS:
        acc += tl.load(bias_ptr + columns, mask=columns < N, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + split * M * N + rows[:, None] * N + columns[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (columns[None, :] < N))


@jit
def add_splits_kernel(partial_ptr, bias_ptr, out_ptr, M, N, SPLITS: tl.constexpr,
                      HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    # The partial sums of BLOCK outputs, added split after split (always in that order).
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < M * N
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for split in tl.static_range(SPLITS):
        acc += tl.load(partial_ptr + split * M * N + index, mask=inside, other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + index % N, mask=inside, other=0.0).to(tl.float32)
    tl.store(out_ptr + index, acc.to(out_ptr.dtype.element_ty), mask=inside)


@functools.cache
def gemv_config(n: int, k: int, num_sms: int) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, SPLIT_K): ``GEMV_TILE``'s tile, and the inputs split in two until
    the programs about fill the GPU once (at least 2 x BLOCK_K inputs a split)."""
    block_n, block_k = GEMV_TILE["BLOCK_N"], GEMV_TILE["BLOCK_K"]
    programs = -(-n // block_n)
    split = 1
    while 10 * programs * split < 9 * num_sms and k // (2 * split) >= 2 * block_k:
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
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    partial = out if split == 1 else torch.empty(split, m, n, dtype=torch.float32,
                                                 device=x.device)
    has_bias = bias is not None and split == 1
    gemv_kernel[(triton.cdiv(n, block_n), split)](
        x, weight, bias if has_bias else x, partial, m, n, k, x.stride(0), weight.stride(0),
        ROWS=MAX_ROWS, K_PER_SPLIT=k_per_split, BLOCK_N=block_n, BLOCK_K=block_k,
        HAS_BIAS=has_bias,
        DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32",  # as the attention's
        num_warps=GEMV_TILE["num_warps"], num_stages=GEMV_TILE["num_stages"])
    if split > 1:
        block = 1024
        add_splits_kernel[(triton.cdiv(m * n, block),)](
            partial, bias if bias is not None else x, out, m, n, SPLITS=split,
            HAS_BIAS=bias is not None, BLOCK=block)
    return out


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
    this kernel for its products of at most ``max_rows`` rows; 0 gives them back
    ``F.linear``."""
    assert 0 <= max_rows <= MAX_ROWS, max_rows
    for module in model.modules():
        if hasattr(type(module), "product"):
            if max_rows:
                module.product = functools.partial(small_product, max_rows)
            else:
                vars(module).pop("product", None)  # the class's F.linear again
