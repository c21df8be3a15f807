"""Variant GEMV launcher for the A/B (not committed)."""
import torch, triton, triton.language as tl
from nanovllm.kernels import gemv as G

@triton.jit
def reduce_kernel(partial_ptr, y_ptr, MN, SPLIT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < MN
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for s in tl.static_range(SPLIT):
        acc += tl.load(partial_ptr + s * MN + offs, mask=m, other=0.0)
    tl.store(y_ptr + offs, acc.to(y_ptr.dtype.element_ty), mask=m)

def gemv_v(x, w, bn, bk, split, warps, stages, fused_reduce=True):
    m, k = x.shape; n = w.shape[0]
    kps = triton.cdiv(triton.cdiv(k, split), bk) * bk
    if split == 1:
        y = torch.empty(m, n, dtype=x.dtype, device=x.device)
        partial = y
    else:
        partial = torch.empty(split, m, n, dtype=torch.float32, device=x.device)
    G.gemv_kernel[(triton.cdiv(n, bn), split)](x, w, partial, m, n, k, x.stride(0), w.stride(0),
        ROWS=16, K_PER_SPLIT=kps, BLOCK_N=bn, BLOCK_K=bk, DOT_PRECISION="tf32",
        num_warps=warps, num_stages=stages)
    if split == 1:
        return y
    if fused_reduce:
        y = torch.empty(m, n, dtype=x.dtype, device=x.device)
        reduce_kernel[(triton.cdiv(m * n, 1024),)](partial, y, m * n, SPLIT=split, BLOCK=1024)
        return y
    return partial.sum(0).to(x.dtype)

