"""Time the attention kernels alone, and choose the decode kernel's tile on this GPU.

Decode attention reads the whole KV cache of every running sequence every step, so at
large batches it is most of a decode step, and its speed is a bandwidth: bytes of keys
and values read, over the kernel's time. This builds a paged cache shaped like
Qwen3-0.6B's (8 kv heads of 128, 16 query heads; one layer; blocks shuffled so that
every sequence is scattered over the pool, as in a long-running engine) and times:

* the decode kernel at batch 256, contexts uniform in [512, 1536], for a few tiles
  (``DECODE_TILE``: tokens per loop step, warps, pipeline depth), as GB/s;
* the decode kernel at batch 1 (context 768) with and without split-K;
* the prefill kernel on 16 prompts of 512 tokens, as TFLOP/s (causal: half the square).

Before timing, both kernels are compared with their torch references on some of the same
inputs (the largest absolute difference is recorded; bf16 outputs differ by ~1e-2 at most).

Times are ``triton.testing.do_bench`` medians (CUDA events; the cache, over a GiB,
is far larger than L2, so no run reads another's leftovers from cache).
"""

import contextlib

import torch

from nanovllm.kernels import decode_attention, prefill_attention
from nanovllm.layers.attention import StepInputs, paged_attention

TILES = [  # the first is the default (decode_attention.DECODE_TILE)
    {"BLOCK_N": 128, "num_warps": 8, "num_stages": 2},
    {"BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    {"BLOCK_N": 64, "num_warps": 4, "num_stages": 2},
    {"BLOCK_N": 128, "num_warps": 4, "num_stages": 2},
    {"BLOCK_N": 128, "num_warps": 8, "num_stages": 3},
]


@contextlib.contextmanager
def decode_tile(tile: dict):
    """Run the decode kernel with ``tile`` instead of ``DECODE_TILE`` inside this block."""
    default = dict(decode_attention.DECODE_TILE)
    decode_attention.DECODE_TILE.update(tile)
    try:
        yield
    finally:
        decode_attention.DECODE_TILE.update(default)


def plain(query, k_cache, v_cache, cu, context, tables, scale, max_query_len):
    """The plain torch attention (layers/attention.py) the kernels are checked against."""
    meta = StepInputs(None, None, None, cu, context, tables, None, max_query_len)
    return paged_attention(query, k_cache, v_cache, meta, scale)


def paged_cache(context_lens: list[int], kv_heads: int, head_dim: int, block_size: int,
                device, generator: torch.Generator):
    blocks = [-(-n // block_size) for n in context_lens]
    order = torch.randperm(sum(blocks), generator=generator).tolist()
    tables = torch.zeros(len(blocks), max(blocks), dtype=torch.int32)
    for i, count in enumerate(blocks):
        tables[i, :count] = torch.tensor([order.pop() for _ in range(count)])
    shape = (sum(blocks), block_size, kv_heads, head_dim)
    k_cache = torch.randn(shape, device=device, dtype=torch.bfloat16)
    v_cache = torch.randn(shape, device=device, dtype=torch.bfloat16)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=device)
    return k_cache, v_cache, tables.to(device), lens


def sweep(heads: int = 16, kv_heads: int = 8, head_dim: int = 128, block_size: int = 16,
          tiles: list[dict] = TILES) -> dict:
    from triton.testing import do_bench

    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(0)
    scale = head_dim ** -0.5
    results = {"decode_bs256": [], "shape": dict(heads=heads, kv_heads=kv_heads,
                                                  head_dim=head_dim, block_size=block_size)}
    lens = torch.randint(512, 1537, (256,), generator=generator).tolist()
    k_cache, v_cache, tables, context = paged_cache(lens, kv_heads, head_dim, block_size,
                                                    device, generator)
    query = torch.randn(256, heads, head_dim, device=device, dtype=torch.bfloat16)
    kv_bytes = sum(lens) * kv_heads * head_dim * 2 * 2  # keys and values, bf16
    # First, right: the kernel (with and without split-K) against the plain attention.
    cu8 = torch.arange(9, dtype=torch.int32, device=device)
    reference = plain(query[:8], k_cache, v_cache, cu8, context[:8], tables[:8], scale, 1).float()
    results["decode_max_error_vs_torch"] = max(
        (decode_attention.decode_attention(query[:8], k_cache, v_cache, tables[:8],
                                           context[:8], scale, num_splits=splits).float()
         - reference).abs().max().item() for splits in (1, 5))
    for tile in tiles:
        with decode_tile(tile):
            ms = do_bench(lambda: decode_attention.decode_attention(
                query, k_cache, v_cache, tables, context, scale), return_mode="median")
        results["decode_bs256"].append({**tile, "ms": ms, "GB_per_s": kv_bytes / ms / 1e6})
    best = max(results["decode_bs256"], key=lambda r: r["GB_per_s"])
    results["best_tile"] = {k: best[k] for k in ("BLOCK_N", "num_warps", "num_stages")}

    one = context[:1].clone().fill_(768)
    single = {}
    for splits in (None, 1):
        with decode_tile(results["best_tile"]):
            ms = do_bench(lambda s=splits: decode_attention.decode_attention(
                query[:1], k_cache, v_cache, tables[:1], one, scale, num_splits=s),
                return_mode="median")
        chosen = splits or decode_attention.choose_num_splits(1, kv_heads, device)
        single[f"splits_{chosen}"] = {"us": ms * 1e3,
                                      "GB_per_s": 768 * kv_heads * head_dim * 4 / ms / 1e6}
    results["decode_bs1_ctx768"] = single
    del k_cache, v_cache

    prompts, length = 16, 512
    k_cache, v_cache, tables, context = paged_cache([length] * prompts, kv_heads, head_dim,
                                                    block_size, device, generator)
    query = torch.randn(prompts * length, heads, head_dim, device=device, dtype=torch.bfloat16)
    cu = torch.arange(0, prompts * length + 1, length, dtype=torch.int32, device=device)
    args = (query, k_cache, v_cache, cu, context, tables, scale, length)
    results["prefill_max_error_vs_torch"] = (
        prefill_attention.prefill_attention(*args)[:2 * length].float()
        - plain(query[:2 * length], k_cache, v_cache, cu[:3], context[:2], tables[:2], scale,
                length).float()).abs().max().item()
    ms = do_bench(lambda: prefill_attention.prefill_attention(*args), return_mode="median")
    flops = 4 * heads * head_dim * prompts * length * (length + 1) / 2
    results["prefill_16x512"] = {"ms": ms, "TFLOP_per_s": flops / ms / 1e9}
    return results
