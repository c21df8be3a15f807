"""One-row GEMV without tl.dot (exploration, not committed)."""
import torch, triton, triton.language as tl

@triton.jit
def gemv1_kernel(x_ptr, w_ptr, out_ptr, N, K, w_stride, K_PER_SPLIT: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVICT: tl.constexpr):
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    split = tl.program_id(1)
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for start in range(0, K_PER_SPLIT, BLOCK_K):
        ks = split * K_PER_SPLIT + start + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + ks, mask=ks < K, other=0.0).to(tl.float32)
        if EVICT:
            w = tl.load(w_ptr + cols[:, None].to(tl.int64) * w_stride + ks[None, :],
                        mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0, eviction_policy="evict_first")
        else:
            w = tl.load(w_ptr + cols[:, None].to(tl.int64) * w_stride + ks[None, :],
                        mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += w.to(tl.float32) * x[None, :]
    y = tl.sum(acc, axis=1)
    tl.store(out_ptr + split * N + cols, y.to(out_ptr.dtype.element_ty), mask=cols < N)

@triton.jit
def add_kernel(p_ptr, out_ptr, N, SPLITS: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for s in tl.static_range(SPLITS):
        acc += tl.load(p_ptr + s * N + i, mask=i < N, other=0.0)
    tl.store(out_ptr + i, acc.to(out_ptr.dtype.element_ty), mask=i < N)

def gemv1(x, w, bn, bk, split, warps, stages, evict=False):
    k = x.shape[1]; n = w.shape[0]
    kps = triton.cdiv(triton.cdiv(k, split), bk) * bk
    out = torch.empty(1, n, dtype=x.dtype, device=x.device)
    part = out if split == 1 else torch.empty(split, n, dtype=torch.float32, device=x.device)
    gemv1_kernel[(triton.cdiv(n, bn), split)](x, w, part, n, k, w.stride(0), K_PER_SPLIT=kps,
        BLOCK_N=bn, BLOCK_K=bk, EVICT=evict, num_warps=warps, num_stages=stages)
    if split > 1:
        add_kernel[(triton.cdiv(n, 1024),)](part, out, n, SPLITS=split, BLOCK=1024)
    return out
