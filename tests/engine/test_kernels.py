"""Each Triton kernel against the plain torch version it speeds up (``layers/``), and the plain
attention against textbook attention.

On a machine without a GPU the Triton kernels run in Triton's interpreter
(TRITON_INTERPRET=1) with small shapes; on a GPU they run compiled, at the shapes of a
real model (Qwen3-0.6B: 16 query heads, 8 kv heads, head_dim 128), in float32 and bfloat16.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nanovllm.kernels import (
    decode_attention,
    gemv,
    prefill_attention,
    qk_norm_rotary,
    sample,
    store_kvcache,
    triton_support,
)
from nanovllm.layers import attention, fp8
from nanovllm.layers.attention import StepInputs, gather_context, paged_attention, store_kv
from nanovllm.layers.layernorm import RMSNorm
from nanovllm.layers.rotary_embedding import RotaryEmbedding
from nanovllm.layers.sampler import philox, race

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
# (heads, kv_heads, head_dim, block_size, longest context)
SHAPES = (16, 8, 128, 16, 1500) if ON_GPU else (4, 2, 16, 16, 70)
DTYPES = [torch.float32, torch.bfloat16] if ON_GPU else [torch.float32]
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}  # max absolute difference allowed


# Triton's interpreter works only if TRITON_INTERPRET=1 was set before Triton was first
# imported (and other libraries, transformers among them, import Triton early). So on a
# CPU-only machine the Triton-vs-torch tests run in a child process that starts with it set.
RUN_TRITON_HERE = ON_GPU or os.environ.get("TRITON_INTERPRET") == "1"


def triton_here(test):
    """A test that runs Triton kernels: here on a GPU or under the interpreter, else in the
    child process (marked, so that the child selects every such test, whatever its name)."""
    skip = pytest.mark.skipif(not RUN_TRITON_HERE,
                              reason="run by test_triton_kernels_in_interpreter (child process)")
    return pytest.mark.triton_kernel(skip(test))


@pytest.mark.skipif(RUN_TRITON_HERE, reason="the Triton kernels run in this process")
def test_triton_kernels_in_interpreter():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    child = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-m",
         "triton_kernel"],
        env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True,
        cwd=Path(__file__).parents[2])
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    assert " passed" in child.stdout and "skipped" not in child.stdout, child.stdout[-2000:]
    marked = subprocess.run(  # every marked test ran in the child, none was left out
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
         "--collect-only", "-m", "triton_kernel"], capture_output=True, text=True,
        cwd=Path(__file__).parents[2])
    count = int(marked.stdout.strip().splitlines()[-1].split("/")[0].split()[0])
    assert f"{count} passed" in child.stdout, (count, child.stdout[-500:])


def paged_cache(num_seqs: int, context_lens: list[int], dtype, seed: int = 0):
    """A random KV cache and block tables that scatter each sequence over shuffled blocks."""
    heads, kv_heads, head_dim, block_size, _ = SHAPES
    generator = torch.Generator().manual_seed(seed)
    blocks_needed = [-(-n // block_size) for n in context_lens]
    num_blocks = sum(blocks_needed) + 3
    shuffled = torch.randperm(num_blocks, generator=generator).tolist()
    tables = torch.full((num_seqs, max(blocks_needed)), -1, dtype=torch.int32)
    for i, count in enumerate(blocks_needed):
        tables[i, :count] = torch.tensor([shuffled.pop() for _ in range(count)])
    shape = (num_blocks, block_size, kv_heads, head_dim)
    k_cache = torch.randn(shape, generator=generator).to(DEVICE, dtype)
    v_cache = torch.randn(shape, generator=generator).to(DEVICE, dtype)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=DEVICE)
    return k_cache, v_cache, tables.to(DEVICE), lens


def dense_causal_attention(q, k, v, scale):
    """Textbook attention for one sequence whose queries are its last len(q) tokens."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1).float(), v.repeat_interleave(group, 1).float()
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale
    offset = k.shape[0] - q.shape[0]
    mask = torch.ones(q.shape[0], k.shape[0], dtype=torch.bool).triu(offset + 1)
    scores = scores.masked_fill(mask.to(scores.device), float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def metadata(cu, lens, tables, max_query_len: int) -> StepInputs:
    return StepInputs(None, None, None, cu_seqlens_q=cu, context_lens=lens, block_tables=tables,
                      sample_rows=None, max_query_len=max_query_len)


def test_paged_attention_matches_textbook_attention():
    heads, _, head_dim, _, _ = SHAPES
    context_lens = [37, 16, 5]  # a full prompt (37 rows), 3 after a cached prefix, a decode
    k_cache, v_cache, tables, lens = paged_cache(3, context_lens, torch.float32)
    cu = torch.tensor([0, 37, 40, 41], dtype=torch.int32, device=DEVICE)
    query = torch.randn(41, heads, head_dim, device=DEVICE)
    out = paged_attention(query, k_cache, v_cache, metadata(cu, lens, tables, 37), 0.3)
    for i, n in enumerate(context_lens):
        k = gather_context(k_cache, tables[i], n)
        v = gather_context(v_cache, tables[i], n)
        rows = slice(int(cu[i]), int(cu[i + 1]))
        expected = dense_causal_attention(query[rows], k, v, 0.3)
        torch.testing.assert_close(out[rows], expected, atol=1e-5, rtol=1e-5)


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
def test_store_kvcache_kernel_matches_reference(dtype):
    _, kv_heads, head_dim, _, _ = SHAPES
    k_cache, v_cache, _, _ = paged_cache(2, [40, 9], dtype)
    num_slots = k_cache.shape[0] * k_cache.shape[1]
    slots = torch.randperm(num_slots)[:12].to(DEVICE)
    slots[5] = -1  # padding: must not be stored anywhere
    # key/value as strided views into one fused tensor, as the model produces them
    fused = torch.randn(12, 3 * kv_heads, head_dim, device=DEVICE).to(dtype)
    key, value = fused[:, :kv_heads], fused[:, kv_heads:2 * kv_heads]
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    store_kv(key, value, expected_k, expected_v, slots)
    store_kvcache.store_kvcache(key, value, k_cache, v_cache, slots)
    assert torch.equal(k_cache, expected_k) and torch.equal(v_cache, expected_v)
    flat = k_cache.flatten(0, 1)
    assert torch.equal(flat[slots[0]], key[0])


def fused_qkv_views(num_tokens: int, heads: int, kv_heads: int, head_dim: int, dtype,
                    device=DEVICE, seed: int = 0):
    """A random [tokens, q | k | v] projection output, and q, k as the model views it."""
    generator = torch.Generator().manual_seed(seed)
    q_size, kv_size = heads * head_dim, kv_heads * head_dim
    qkv = torch.randn(num_tokens, q_size + 2 * kv_size, generator=generator).to(device, dtype)
    q = qkv[:, :q_size].view(num_tokens, heads, head_dim)
    k = qkv[:, q_size:q_size + kv_size].view(num_tokens, kv_heads, head_dim)
    return qkv, q, k


def shuffled_positions(num_tokens: int, max_position: int, dtype, device=DEVICE):
    """Positions out of order, the first and the last the tables hold among them."""
    generator = torch.Generator().manual_seed(1)
    middle = torch.randperm(max_position - 2, generator=generator)[:num_tokens - 2] + 1
    return torch.cat([torch.tensor([max_position - 1]), middle, torch.tensor([0])]).to(device, dtype)


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("qk_norm", [True, False])  # Qwen3; Qwen2 and Llama
@pytest.mark.parametrize("position_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("heads, kv_heads", [SHAPES[:2], (6, 3)])  # tiles with masked rows
def test_qk_norm_rotary_kernel_matches_reference(dtype, qk_norm, position_dtype, heads, kv_heads):
    head_dim, max_position, num_tokens, eps = SHAPES[2], 500, 11, 1e-6
    rotary = RotaryEmbedding(head_dim, max_position, 1e6).to(DEVICE)
    qkv, q, k = fused_qkv_views(num_tokens, heads, kv_heads, head_dim, dtype)
    # Outputs mostly below 2 in size, where one bf16 rounding step (2**-7) is within TOLERANCE.
    if qk_norm:  # rows far from unit scale, gains far from 1
        qkv.mul_(3)
        generator = torch.Generator().manual_seed(2)
        weights = [(0.5 + 0.1 * torch.randn(head_dim, generator=generator)).to(DEVICE, dtype)
                   for _ in range(2)]
    else:
        qkv.mul_(0.5)
        weights = [None, None]
    positions = shuffled_positions(num_tokens, max_position, position_dtype)
    before = qkv.clone()
    expected_q, expected_k = q, k
    if qk_norm:  # the plain path: the norm layers, then the rotary layer
        norms = [RMSNorm(head_dim, eps).to(DEVICE, dtype) for _ in weights]
        for norm, weight in zip(norms, weights, strict=True):
            norm.weight.data.copy_(weight)
        expected_q, expected_k = norms[0](q), norms[1](k)
    expected_q, expected_k = rotary(positions, expected_q, expected_k)
    qk_norm_rotary.qk_norm_rotary(positions, q, k, rotary.cos, rotary.sin, *weights, eps)
    for actual, expected in ((q, expected_q), (k, expected_k)):
        difference = (actual.float() - expected.float()).abs().max().item()
        print(f"qk_norm_rotary {dtype}, norm {qk_norm}: max |triton - torch| = {difference:.2e}")
        assert difference <= TOLERANCE[dtype]
    v_columns = slice((heads + kv_heads) * head_dim, None)
    assert torch.equal(qkv[:, v_columns], before[:, v_columns])  # v is left alone


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_splits", [None, 1, 3])  # None: the kernel's own choice
def test_decode_attention_kernel_matches_reference(dtype, num_splits):
    heads, _, head_dim, block_size, longest = SHAPES
    # context 0 is a padding row of a CUDA-graph batch: it must come out as zeros, not NaN
    context_lens = [1, block_size, block_size + 1, longest, 7, longest // 2, 0]
    k_cache, v_cache, tables, lens = paged_cache(len(context_lens), context_lens, dtype)
    query = torch.randn(len(context_lens), heads, head_dim, device=DEVICE).to(dtype)
    scale = head_dim ** -0.5
    cu = torch.arange(len(context_lens) + 1, dtype=torch.int32, device=DEVICE)
    expected = paged_attention(query, k_cache, v_cache, metadata(cu, lens, tables, 1), scale)
    actual = decode_attention.decode_attention(query, k_cache, v_cache, tables, lens, scale,
                                               num_splits=num_splits)
    difference = (actual.float() - expected.float()).abs().max().item()
    print(f"decode {dtype}, splits {num_splits}: max |triton - torch| = {difference:.2e}")
    assert difference <= TOLERANCE[dtype]
    assert torch.equal(actual[-1], torch.zeros_like(actual[-1]))
    # the query as the model passes it: a view into the fused QKV output, read in place
    fused = torch.zeros(len(context_lens), heads + 4, head_dim, device=DEVICE, dtype=dtype)
    fused[:, :heads] = query
    view = fused.flatten(1).split([heads * head_dim, 4 * head_dim], dim=-1)[0]
    view = view.view(-1, heads, head_dim)
    assert not view.is_contiguous()
    assert torch.equal(decode_attention.decode_attention(view, k_cache, v_cache, tables, lens,
                                                         scale, num_splits=num_splits), actual)


def test_split_count_fills_the_gpu_and_depends_on_batch_size_only():
    cpu = torch.device("cpu")  # the interpreter's pretend GPU has 4 multiprocessors
    assert decode_attention.choose_num_splits(1, 2, cpu) == 4  # 2 programs -> 8 = 2 x 4
    assert decode_attention.choose_num_splits(3, 2, cpu) == 2
    assert decode_attention.choose_num_splits(256, 8, cpu) == 1
    assert decode_attention.choose_num_splits(1, 1, cpu) == 8


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_attention_kernel_matches_reference(dtype):
    heads, _, head_dim, block_size, longest = SHAPES
    # (query_len, context_len): whole prompts, chunks after a cached prefix, decode tokens
    chunks = [(longest, longest), (3, block_size + 3), (1, 9), (block_size, 2 * block_size),
              (longest // 2, longest), (1, longest)]
    query_lens = [q for q, _ in chunks]
    k_cache, v_cache, tables, lens = paged_cache(len(chunks), [c for _, c in chunks], dtype)
    cu = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32,
                      device=DEVICE)
    query = torch.randn(sum(query_lens), heads, head_dim, device=DEVICE).to(dtype)
    scale = head_dim ** -0.5
    expected = paged_attention(query, k_cache, v_cache,
                               metadata(cu, lens, tables, max(query_lens)), scale)
    actual = prefill_attention.prefill_attention(query, k_cache, v_cache, cu, lens, tables, scale,
                                                 max(query_lens))
    difference = (actual.float() - expected.float()).abs().max().item()
    print(f"prefill {dtype}: max |triton - torch| = {difference:.2e}")
    assert difference <= TOLERANCE[dtype]


def fp8_cache(k_cache, v_cache):
    """The caches rounded to 8 bits as the engine stores them, with their scales."""
    (k, k_scales), (v, v_scales) = fp8.quantize(k_cache), fp8.quantize(v_cache)
    return k, v, k_scales, v_scales


@triton_here
def test_rounding_to_e4m3_is_torchs_cast_everywhere():
    """Every e4m3 number, every midpoint between two (ties go to the even one) and a float32
    step either side of it, both signs, signed zeros, underflow, saturation and NaN."""
    numbers = torch.arange(256, dtype=torch.uint8).view(fp8.FP8).float()
    numbers = numbers[~numbers.isnan()].unique()  # sorted, -448 .. 448
    middles = (numbers[1:] + numbers[:-1]) / 2
    x = torch.cat([numbers, middles, middles.nextafter(torch.tensor(float("inf"))),
                   middles.nextafter(torch.tensor(float("-inf"))),
                   torch.tensor([-0.0, 0.0, -1e-30, 1e-30, 465.0, -465.0, 1e6, -1e6,
                                 float("nan")])])
    size = triton_support.triton.next_power_of_2(len(x))
    padded = torch.zeros(size)
    padded[:len(x)] = x
    out = torch.empty(size, device=DEVICE)
    round_to_e4m3_kernel[(1,)](padded.to(DEVICE), out, SIZE=size)
    # saturating at 448 first: torch's own cast of larger numbers differs between versions
    got, want = out.cpu()[:len(x)], x.clamp(-448, 448).to(fp8.FP8).float()
    assert torch.equal(got.isnan(), want.isnan())
    same = got[~want.isnan()] == want[~want.isnan()]
    assert same.all(), x[~want.isnan()][~same][:8]
    assert torch.equal(got.signbit(), want.signbit())  # -0 stays -0


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
def test_store_kvcache_fp8_kernel_stores_the_same_bits_as_the_reference(dtype):
    _, kv_heads, head_dim, _, _ = SHAPES
    k_cache, v_cache, _, _ = paged_cache(2, [40, 9], dtype)
    caches = list(fp8_cache(k_cache, v_cache))
    expected = [c.clone() for c in caches]
    num_slots = k_cache.shape[0] * k_cache.shape[1]
    slots = torch.randperm(num_slots)[:12].to(DEVICE)
    slots[5] = -1
    generator = torch.Generator().manual_seed(3)
    # rows from 1e-4 to 1e2 in size, one of zeros, as strided views into one fused tensor
    sizes = torch.logspace(-4, 2, 12)[:, None, None]
    fused = (torch.randn(12, 3 * kv_heads, head_dim, generator=generator) * sizes).to(DEVICE, dtype)
    fused[2, 0] = 0
    fused[4, 1, :8] = torch.tensor([-1e-7, 1e-7, -0.0, 0.0, -3e-6, 2.0, -2.0, 1.5])
    fused[4, 1, 8:] = 0  # numbers that round to zero keep their sign, as torch's cast
    key, value = fused[:, :kv_heads], fused[:, kv_heads:2 * kv_heads]
    store_kv(key, value, *expected[:2], slots, *expected[2:])
    store_kvcache.store_kvcache_fp8(key, value, *caches, slots)
    for actual, wanted in zip(caches, expected, strict=True):
        bits = (lambda t: t.view(torch.uint8)) if actual.dtype == fp8.FP8 else (lambda t: t)
        assert torch.equal(bits(actual), bits(wanted))
    assert (caches[0].view(torch.uint8) == 0x80).any()  # a -0 was stored
    # a row holding a NaN gets a NaN scale, as in torch, not a finite one that hides it
    fused[6, 0, 3] = float("nan")
    store_kvcache.store_kvcache_fp8(key, value, *caches, slots)
    assert caches[2].flatten(0, 1)[slots[6], 0].isnan()
    assert not caches[2].flatten(0, 1)[slots[6], 1].isnan()


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_splits", [None, 1, 3])
def test_decode_attention_kernel_reads_an_fp8_cache(dtype, num_splits):
    heads, _, head_dim, block_size, longest = SHAPES
    context_lens = [1, block_size, block_size + 1, longest, 7, longest // 2, 0]
    k_cache, v_cache, tables, lens = paged_cache(len(context_lens), context_lens, dtype)
    k, v, k_scales, v_scales = fp8_cache(k_cache, v_cache)
    query = torch.randn(len(context_lens), heads, head_dim, device=DEVICE).to(dtype)
    scale = head_dim ** -0.5
    cu = torch.arange(len(context_lens) + 1, dtype=torch.int32, device=DEVICE)
    expected = paged_attention(query, k, v, metadata(cu, lens, tables, 1), scale, k_scales,
                               v_scales)
    actual = decode_attention.decode_attention(query, k, v, tables, lens, scale, num_splits,
                                               k_scales, v_scales)
    assert (actual.float() - expected.float()).abs().max().item() <= TOLERANCE[dtype]
    assert torch.equal(actual[-1], torch.zeros_like(actual[-1]))
    # and the 8-bit cache is what it reads: the same cache in full precision differs
    full = decode_attention.decode_attention(query, k_cache, v_cache, tables, lens, scale,
                                             num_splits)
    assert (full.float() - actual.float()).abs().max().item() > 1e-3


def attend_from_fp8(query, query_lens, context_lens, kernel, **options):
    """``kernel`` ("decode" or "prefill") and the plain torch path on the same 8-bit cache."""
    heads, _, head_dim, _, _ = SHAPES
    k_cache, v_cache, tables, lens = paged_cache(len(context_lens), context_lens, torch.float32)
    k, v, k_scales, v_scales = fp8_cache(k_cache, v_cache)
    cu = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32,
                      device=DEVICE)
    meta = metadata(cu, lens, tables, max(query_lens))
    expected = paged_attention(query, k, v, meta, head_dim ** -0.5, k_scales, v_scales)
    if kernel == "decode":
        actual = decode_attention.decode_attention(query, k, v, tables, lens, head_dim ** -0.5,
                                                   None, k_scales, v_scales, **options)
    else:
        actual = prefill_attention.prefill_attention(query, k, v, cu, lens, tables,
                                                     head_dim ** -0.5, max(query_lens),
                                                     k_scales, v_scales, **options)
    return actual, expected


def fp8_queries(kernel, dtype, first=None):
    """Queries for ``attend_from_fp8``: one per sequence to decode, or chunks to prefill."""
    heads, _, head_dim, block_size, longest = SHAPES
    if kernel == "decode":
        query_lens, context_lens = [1] * 4, [1, block_size + 1, longest, 0]
    else:
        query_lens, context_lens = [longest, 3, 1], [longest, block_size + 3, 9]
    query = torch.randn(sum(query_lens), heads, head_dim, device=DEVICE)
    if first is not None:
        query = query * 1e-3
        query[0, 0, 0] = first
    return query.to(dtype), query_lens, context_lens


@triton_here
@pytest.mark.parametrize("kernel", ["decode", "prefill"])
# bfloat16 products only on a GPU: Triton's interpreter converts e4m3 to bfloat16 wrongly
@pytest.mark.parametrize("float16_products", [True, False] if ON_GPU else [True])
def test_a_bfloat16_model_reads_an_fp8_cache_in_either_16_bit_type(kernel, float16_products):
    """bfloat16 queries (the GPU's case): the products in float16, when the model's queries are
    normalised, or in bfloat16."""
    query, query_lens, context_lens = fp8_queries(kernel, torch.bfloat16)
    actual, expected = attend_from_fp8(query, query_lens, context_lens, kernel,
                                       float16_products=float16_products)
    assert (actual.float() - expected.float()).abs().max().item() <= TOLERANCE[torch.bfloat16]
    if kernel == "decode":
        assert torch.equal(actual[-1], torch.zeros_like(actual[-1]))


@triton_here
@pytest.mark.parametrize("kernel", ["decode", "prefill"])
def test_float16_products_are_taken_when_asked(kernel):
    """A query past float16's 65,504 turns to inf in float16 products: the output is not
    finite, which shows the products ran in float16 (bfloat16 ones keep it finite, below)."""
    query, query_lens, context_lens = fp8_queries(kernel, torch.bfloat16, first=7e4)
    actual, _ = attend_from_fp8(query, query_lens, context_lens, kernel, float16_products=True)
    assert not actual[0].float().isfinite().all()


@triton_here
@pytest.mark.parametrize("kernel", ["decode", "prefill"])
def test_a_float32_model_keeps_float32_products(kernel):
    """``float16_products`` concerns bfloat16 models only: float32 queries keep float32."""
    query, query_lens, context_lens = fp8_queries(kernel, torch.float32)
    actual, expected = attend_from_fp8(query, query_lens, context_lens, kernel,
                                       float16_products=True)
    assert (actual - expected).abs().max().item() <= TOLERANCE[torch.float32]


@pytest.mark.skipif(not ON_GPU, reason="Triton's interpreter converts e4m3 to bfloat16 wrongly")
@pytest.mark.parametrize("kernel", ["decode", "prefill"])
def test_queries_beyond_float16_keep_bfloat16_products(kernel):
    """A model without normalised queries (Qwen2, Llama) may have queries past 65,504: in
    bfloat16 products they stay finite."""
    query, query_lens, context_lens = fp8_queries(kernel, torch.bfloat16, first=7e4)
    actual, _ = attend_from_fp8(query, query_lens, context_lens, kernel)
    assert actual.float().isfinite().all()


@triton_here
@pytest.mark.parametrize("size", [1.0, 1e-3])
def test_a_float16_model_keeps_small_values_from_an_fp8_cache(size):
    """Weights times value scales (max|v| / 448) would be float16 subnormals for small values;
    the kernel divides them by the tile's largest scale first."""
    generator = torch.Generator().manual_seed(0)
    heads, kv_heads, head_dim, block_size, length = 4, 2, 16, 16, 64
    tables = torch.arange(length // block_size, dtype=torch.int32, device=DEVICE)[None]
    lens = torch.tensor([length], dtype=torch.int32, device=DEVICE)
    shape = (length // block_size, block_size, kv_heads, head_dim)
    k, k_scales = fp8.quantize(torch.randn(shape, generator=generator).to(DEVICE))
    v, v_scales = fp8.quantize(torch.randn(shape, generator=generator).to(DEVICE) * size)
    query = torch.randn(1, heads, head_dim, generator=generator).to(DEVICE)
    cu = torch.tensor([0, 1], dtype=torch.int32, device=DEVICE)
    expected = paged_attention(query, k, v, metadata(cu, lens, tables, 1), head_dim ** -0.5,
                               k_scales, v_scales)  # float32
    actual = decode_attention.decode_attention(query.half(), k, v, tables, lens,
                                               head_dim ** -0.5, 1, k_scales, v_scales)
    relative = (actual.float() - expected).abs().max() / expected.abs().max()
    assert relative.item() < 2e-3  # float16's own rounding; 2e-2 without the rescaling


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_attention_kernel_reads_an_fp8_cache(dtype):
    heads, _, head_dim, block_size, longest = SHAPES
    chunks = [(longest, longest), (3, block_size + 3), (1, 9), (longest // 2, longest)]
    query_lens = [q for q, _ in chunks]
    k_cache, v_cache, tables, lens = paged_cache(len(chunks), [c for _, c in chunks], dtype)
    k, v, k_scales, v_scales = fp8_cache(k_cache, v_cache)
    cu = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32,
                      device=DEVICE)
    query = torch.randn(sum(query_lens), heads, head_dim, device=DEVICE).to(dtype)
    scale = head_dim ** -0.5
    meta = metadata(cu, lens, tables, max(query_lens))
    expected = paged_attention(query, k, v, meta, scale, k_scales, v_scales)
    actual = prefill_attention.prefill_attention(query, k, v, cu, lens, tables, scale,
                                                 max(query_lens), k_scales, v_scales)
    assert (actual.float() - expected.float()).abs().max().item() <= TOLERANCE[dtype]


def test_cpu_tensors_always_take_the_plain_path(monkeypatch):
    def no_kernels(*args, **kwargs):
        raise AssertionError("a Triton kernel was called for CPU tensors")

    for name in ("store_kvcache", "decode_attention", "prefill_attention"):
        monkeypatch.setattr(attention, name, no_kernels)
    heads, kv_heads, head_dim, block_size, _ = SHAPES
    layer = attention.Attention(heads, kv_heads, head_dim)
    layer.k_cache = torch.zeros(4, block_size, kv_heads, head_dim)
    layer.v_cache = torch.zeros(4, block_size, kv_heads, head_dim)
    q, kv = torch.randn(3, heads, head_dim), torch.randn(3, kv_heads, head_dim)
    meta = StepInputs(None, None, torch.tensor([0, 1, 2]), torch.tensor([0, 3]),
                      torch.tensor([3]), torch.tensor([[0]]), None, max_query_len=3)
    assert layer(q, kv, kv, meta).shape == q.shape


if triton_support.triton is not None:
    tl = triton_support.tl

    @triton_support.triton.jit
    def round_to_e4m3_kernel(x_ptr, out_ptr, SIZE: tl.constexpr):
        index = tl.arange(0, SIZE)
        tl.store(out_ptr + index, store_kvcache.round_to_e4m3(tl.load(x_ptr + index)))

    @triton_support.triton.jit
    def philox_bits_kernel(keys_ptr, out_ptr, COUNT: tl.constexpr):
        row = tl.program_id(0)
        counters = tl.arange(0, COUNT)
        r0, r1, r2, r3 = tl.randint4x(tl.load(keys_ptr + row), counters)
        out = out_ptr + row * COUNT * 4 + counters * 4
        tl.store(out, r0.to(tl.int64))
        tl.store(out + 1, r1.to(tl.int64))
        tl.store(out + 2, r2.to(tl.int64))
        tl.store(out + 3, r3.to(tl.int64))


@triton_here
def test_philox_kernel_matches_reference():
    """The sampler's philox makes bit for bit the numbers tl.randint4x makes in a kernel."""
    keys = torch.tensor([0, 1, 12345, 2**32 + 7, 2**63 - 1, 0x0123456789ABCDEF])
    out = torch.empty(len(keys), 256, 4, dtype=torch.int64, device=DEVICE)
    philox_bits_kernel[(len(keys),)](keys.to(DEVICE), out, COUNT=256)
    assert torch.equal(out.cpu(), philox(keys, 256))


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
def test_race_kernel_matches_reference(dtype):
    # a vocabulary that is no multiple of the kernel's tile; greedy and sampled rows
    rows, vocab = (96, 151_936) if ON_GPU else (6, 3000)
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(rows, vocab, generator=generator) * 3).to(dtype)
    scales = torch.tensor([0.0, 1.0, 1 / 0.6, 2.0, 0.0, 0.5] * (rows // 6))
    keys = torch.randint(0, 2**62, (rows,), generator=generator)
    got = sample.race_triton(logits.to(DEVICE), scales.to(DEVICE), keys.to(DEVICE)).cpu()
    want = race(logits, scales, keys)
    greedy = scales == 0
    assert torch.equal(got[greedy], logits.float().argmax(dim=-1)[greedy])
    # The GPU's float32 log may differ from torch's in the last bit, which can only
    # matter when two scores tie to within it: allow one such row in 96.
    assert (got != want).sum() <= (1 if ON_GPU else 0), (got, want)


@triton_here
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 16])
@pytest.mark.parametrize("config", [None, (32, 128, 1), (16, 64, 2), (64, 32, 4)],
                         ids=["chosen", "one-split", "two-splits", "four-splits"])
def test_gemv_kernel_matches_reference(dtype, rows, config):
    """Outputs and inputs that fill no tile exactly (70 of 16/32/64, 300 of 32/64/128),
    x a view of every other row of a larger tensor, a bias, and splits of the inputs."""
    generator = torch.Generator().manual_seed(rows)
    n, k = (1030, 1000) if ON_GPU else (70, 300)
    weight = torch.randn(n, k, generator=generator).to(DEVICE, dtype)
    bias = torch.randn(n, generator=generator).to(DEVICE, dtype)
    x = torch.randn(2 * rows, k, generator=generator).to(DEVICE, dtype)[::2]
    out = gemv.gemv(x, weight, bias, config)
    expected = torch.nn.functional.linear(x.float(), weight.float(), bias.float())
    assert out.dtype == dtype and out.shape == (rows, n)
    scale = expected.abs().max().item()
    assert (out.float() - expected).abs().max().item() <= TOLERANCE[dtype] * scale
    # the same inputs give the same bits: no atomics, partial sums added in one order
    assert torch.equal(out, gemv.gemv(x, weight, bias, config))


def test_gemv_splits_until_the_programs_about_fill_the_gpu():
    # Qwen3-0.6B's products on an H200 (132 multiprocessors): 32 outputs a program
    assert gemv.gemv_config(4096, 1024, 132) == (32, 128, 1)  # qkv: 128 programs
    assert gemv.gemv_config(6144, 1024, 132) == (32, 128, 1)  # gate/up: 192
    assert gemv.gemv_config(1024, 2048, 132) == (32, 128, 4)  # o: 32 blocks x 4 splits
    assert gemv.gemv_config(1024, 3072, 132) == (32, 128, 4)  # down
    assert gemv.gemv_config(151936, 1024, 132) == (32, 128, 1)  # the LM head: 4,748
    assert gemv.gemv_config(1024, 512, 132) == (32, 128, 2)  # 256 inputs a split at least


def test_use_gemv_zero_gives_the_layers_f_linear_back():
    from nanovllm.layers.linear import ParallelLinear
    from nanovllm.llm import LLM

    model = LLM(device="cpu").engine.model_runner.model
    gemv.use_gemv(model, 16)
    layers = [m for m in model.modules() if isinstance(m, ParallelLinear)]
    assert all("product" in vars(m) for m in layers)
    gemv.use_gemv(model, 0)
    assert not any("product" in vars(m) for m in model.modules())
    assert all(m.product is torch.nn.functional.linear for m in layers)


def test_use_gemv_routes_every_linear_layer_and_the_head():
    from nanovllm.layers.embed_head import ParallelLMHead
    from nanovllm.layers.linear import ParallelLinear
    from nanovllm.llm import LLM
    from nanovllm.sampling_params import SamplingParams
    from tests.engine.model_fixtures import tiny_checkpoint

    llm = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", device="cpu")
    model = llm.engine.model_runner.model
    greedy = SamplingParams(temperature=0.0, max_tokens=8)
    before = llm.generate(["ROMEO:"], greedy, use_tqdm=False)[0].token_ids
    gemv.use_gemv(model, 4)
    layers = [m for m in model.modules() if isinstance(m, (ParallelLinear, ParallelLMHead))]
    assert len(layers) == 4 * model.config.num_hidden_layers + 1
    assert all(m.product.func is gemv.small_product and m.product.args == (4,) for m in layers)
    # on a CPU (and for float32) the routed product is F.linear: the same tokens
    assert llm.generate(["ROMEO:"], greedy, use_tqdm=False)[0].token_ids == before


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
def test_gemv_in_a_bfloat16_model_on_the_gpu_matches_f_linear():
    """The routed products of a bfloat16 model: a decode batch of 3 rows through the LM head
    and a layer's gate/up product, against F.linear, also when replayed as a CUDA graph."""
    from nanovllm.llm import LLM
    from tests.engine.model_fixtures import tiny_checkpoint

    llm = LLM(str(tiny_checkpoint("qwen3", "bfloat16")), dtype="bfloat16", gemv_max_rows=16,
              num_kvcache_blocks=64, max_num_seqs=8)
    model = llm.engine.model_runner.model
    hidden = torch.randn(3, model.config.hidden_size, device="cuda", dtype=torch.bfloat16)
    mlp = model.model.layers[0].mlp.gate_up_proj
    for layer in (model.lm_head, mlp):
        expected = torch.nn.functional.linear(hidden.float(), layer.weight.float())
        got = layer.product(hidden, layer.weight)
        assert (got.float() - expected).abs().max() <= 2e-2 * expected.abs().max()
    graph, static = torch.cuda.CUDAGraph(), hidden.clone()
    mlp.product(static, mlp.weight)  # compile outside the capture
    with torch.cuda.graph(graph):
        out = mlp.product(static, mlp.weight)
    static.copy_(hidden * 2)
    graph.replay()
    torch.testing.assert_close(out, mlp.product(hidden * 2, mlp.weight), atol=0, rtol=0)
