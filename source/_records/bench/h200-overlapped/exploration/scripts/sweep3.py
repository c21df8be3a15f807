"""Call 3 exploration: one-row GEMV variants; decode tiles; per-shape best; whole-step total."""
import json, sys, time
import torch
from triton.testing import do_bench
from nanovllm.kernels import gemv as G, decode_attention as D
from nanovllm.bench import kernel_sweep as KS
from gemv_fma import gemv1

OUT = sys.argv[1]
res = {"gemv": {}, "attn": [], "step": {}, "notes": []}
def save(): json.dump(res, open(OUT, "w"), indent=1)
dev = torch.device("cuda"); t0 = time.time()
SHAPES = {"qkv": (4096, 1024), "o": (1024, 2048), "gate_up": (6144, 1024), "down": (1024, 3072), "lm_head": (151936, 1024)}
W = {s: [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(1 if s == "lm_head" else 28)] for s, (n, k) in SHAPES.items()}
def graph_time(fn, reps=25):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2): fn()
    torch.cuda.current_stream().wait_stream(s); torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); return ts[len(ts) // 2] * 1e3
x1 = {k: torch.randn(1, k, device=dev, dtype=torch.bfloat16) for k in (1024, 2048, 3072)}
# correctness of gemv1
for cfg in [(32, 256, 1, 4, 3, False), (64, 128, 2, 8, 2, True)]:
    w = W["o"][0]; ref = (x1[2048].float() @ w.float().T)
    res["notes"].append(f"gemv1 {cfg} err {(gemv1(x1[2048], w, *cfg).float() - ref).abs().max().item():.3g}")
cands = []
for bn in (8, 16, 32, 64, 128):
    for bk in (64, 128, 256, 512):
        for warps in (2, 4, 8):
            if bn * bk < 32 * warps * 8 or bn * bk > 64 * 256: continue
            for stages in (1, 2, 3, 4):
                cands.append((bn, bk, warps, stages))
import random; random.Random(0).shuffle(cands)
res["notes"].append(f"{len(cands)} tile candidates")
best = {}
for s, (n, k) in SHAPES.items():
    rows = []
    ws = W[s]; x = x1[k]
    us = graph_time(lambda: [G.gemv(x, w) for w in ws]) / len(ws)
    rows.append(["dot-committed", list(G.gemv_config(n, k, 132)), round(us, 2)])
    for bn, bk, warps, stages in cands:
        if time.time() - t0 > 40 * (list(SHAPES).index(s) + 1): res["notes"].append(f"{s} budget"); break
        for split in (1, 2, 4):
            progs = -(-n // bn) * split
            if k // split < bk or (split > 1 and progs > 4 * 132) or progs < 32: continue
            try:
                us = graph_time(lambda: [gemv1(x, w, bn, bk, split, warps, stages) for w in ws]) / len(ws)
            except Exception as e:
                res["notes"].append(f"{s} {(bn, bk, split, warps, stages)} {e!r}"[:200]); continue
            rows.append(["fma", [bn, bk, split, warps, stages], round(us, 2)])
    rows.sort(key=lambda r: r[2])
    res["gemv"][s] = rows[:12] + [r for r in rows if r[0] == "dot-committed"]
    best[s] = rows[0]
    save(); print(s, rows[:3], time.time() - t0, flush=True)
# evict_first on the best
for s, r in best.items():
    if r[0] != "fma": continue
    n, k = SHAPES[s]; ws = W[s]; x = x1[k]; c = r[1]
    us = graph_time(lambda: [gemv1(x, w, *c, evict=True) for w in ws]) / len(ws)
    res["gemv"][s + "_evict"] = [c, round(us, 2)]
# whole step (products only), M=1: committed vs best
def step(prod_for):
    for i in range(28):
        for s in ("qkv", "o", "gate_up", "down"):
            prod_for(s)(x1[SHAPES[s][1]], W[s][i])
    prod_for("lm_head")(x1[1024], W["lm_head"][0])
res["step"]["cublas"] = round(graph_time(lambda: step(lambda s: torch.nn.functional.linear)), 1)
res["step"]["dot"] = round(graph_time(lambda: step(lambda s: G.gemv)), 1)
def bestprod(s):
    r = best[s]
    if r[0] != "fma": return G.gemv
    return lambda x, w: gemv1(x, w, *r[1])
res["step"]["best"] = round(graph_time(lambda: step(bestprod)), 1)
save(); print("step", res["step"], flush=True)
del W; torch.cuda.empty_cache()
gen = torch.Generator().manual_seed(0)
lens = torch.randint(512, 1537, (256,), generator=gen).tolist()
kc, vc, tables, ctx = KS.paged_cache(lens, 8, 128, 16, dev, gen)
q = torch.randn(256, 16, 128, device=dev, dtype=torch.bfloat16)
kvb = sum(lens) * 8 * 128 * 4
for rep in range(2):
    for t in [(128, 8, 2), (128, 8, 1), (256, 8, 2), (256, 8, 1), (128, 16, 2), (64, 8, 1), (128, 4, 1), (256, 16, 1), (64, 4, 1), (128, 8, 3)]:
        D.DECODE_TILE.update({"BLOCK_N": t[0], "num_warps": t[1], "num_stages": t[2]})
        try:
            ms = do_bench(lambda: D.decode_attention(q, kc, vc, tables, ctx, 128 ** -0.5), return_mode="median")
            res["attn"].append([*t, rep, round(ms * 1e3, 1), round(kvb / ms / 1e6)])
        except Exception as e:
            res["notes"].append(f"attn {t} {e!r}"[:200])
save(); print("attn", sorted(res["attn"], key=lambda r: -r[-1])[:5], time.time() - t0, flush=True)
