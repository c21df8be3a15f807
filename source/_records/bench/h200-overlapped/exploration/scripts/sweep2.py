"""Call 2 exploration (not committed): decode attention, new grid order vs old; gemv as committed vs cuBLAS."""
import json, sys, time
import torch
from triton.testing import do_bench
from nanovllm.kernels import gemv as G, decode_attention as D
from nanovllm.bench import kernel_sweep as KS
import old_decode as O

OUT = sys.argv[1]
res = {"attn": [], "attn_bs": [], "gemv": {}, "step": {}, "notes": []}
def save(): json.dump(res, open(OUT, "w"), indent=1)
dev = torch.device("cuda"); t0 = time.time()
gen = torch.Generator().manual_seed(0)
lens = torch.randint(512, 1537, (256,), generator=gen).tolist()
kc, vc, tables, ctx = KS.paged_cache(lens, 8, 128, 16, dev, gen)
qkv = torch.randn(256, 16 + 8, 128, device=dev, dtype=torch.bfloat16)
qview = qkv.flatten(1).split([16 * 128, 8 * 128], dim=-1)[0].view(-1, 16, 128)
q = qview.contiguous()
kvb = sum(lens) * 8 * 128 * 4
sc = 128 ** -0.5
ref = O.decode_attention(q, kc, vc, tables, ctx, sc)
res["notes"].append(f"new==old bits: {torch.equal(D.decode_attention(qview, kc, vc, tables, ctx, sc), ref)}")
def tile(mod, t):
    mod.DECODE_TILE.update({"BLOCK_N": t[0], "num_warps": t[1], "num_stages": t[2]})
tiles = [(128, 4, 2), (128, 8, 2), (64, 4, 2), (64, 4, 3), (64, 2, 3), (128, 4, 3), (32, 4, 5), (64, 8, 2)]
for rep in range(2):
    for t in tiles:
        for name, mod, qq in (("old", O, q), ("new", D, qview)):
            tile(mod, t)
            ms = do_bench(lambda: mod.decode_attention(qq, kc, vc, tables, ctx, sc), return_mode="median")
            res["attn"].append([name, *t, rep, round(ms * 1e3, 1), round(kvb / ms / 1e6)])
save(); print("attn", time.time() - t0, flush=True)
best_new = max((r for r in res["attn"] if r[0] == "new"), key=lambda r: r[-1])[1:4]
best_old = max((r for r in res["attn"] if r[0] == "old"), key=lambda r: r[-1])[1:4]
res["best_new"], res["best_old"] = best_new, best_old
for bs in (1, 8, 32, 64, 128, 192):
    sub = lens[:bs]; b = sum(sub) * 8 * 128 * 4
    for name, mod, qq, t in (("old", O, q, best_old), ("new", D, qview, best_new), ("old-64-4-3", O, q, (64, 4, 3))):
        tile(mod, t)
        ms = do_bench(lambda: mod.decode_attention(qq[:bs], kc, vc, tables[:bs], ctx[:bs], sc), return_mode="median")
        res["attn_bs"].append([name, bs, round(ms * 1e3, 1), round(b / ms / 1e6)])
save(); print("attn bs", time.time() - t0, flush=True)
del kc, vc; torch.cuda.empty_cache()

SHAPES = {"qkv": (4096, 1024), "o": (1024, 2048), "gate_up": (6144, 1024), "down": (1024, 3072)}
W = {s: [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(28)] for s, (n, k) in SHAPES.items()}
LM = torch.randn(151936, 1024, device=dev, dtype=torch.bfloat16) * 0.02
def graph_time(fn, reps=30):
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
wbytes = sum(n * k * 2 * 28 for n, k in SHAPES.values()) + LM.numel() * 2
for m in (1, 2, 4, 8, 16, 32, 64, 128, 256):
    xs = {k: torch.randn(m, k, device=dev, dtype=torch.bfloat16) for k in (1024, 2048, 3072)}
    for name, prod in (("cublas", torch.nn.functional.linear), ("gemv", G.gemv)):
        if name == "gemv" and m > 16: continue
        def step():
            for i in range(28):
                for s, (n, k) in SHAPES.items():
                    prod(xs[k], W[s][i])
            prod(xs[1024], LM)
        us = graph_time(step)
        res["step"][f"{name}_m{m}"] = [round(us, 1), round(wbytes / us / 1e3)]
    save(); print("step", m, res["step"], flush=True)
# per shape, committed gemv vs cuBLAS at m = 1, 16
for m in (1, 16):
    for s, (n, k) in SHAPES.items():
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        for name, prod in (("cublas", torch.nn.functional.linear), ("gemv", G.gemv)):
            us = graph_time(lambda: [prod(x, w) for w in W[s]]) / 28
            res["gemv"][f"{s}_m{m}_{name}"] = [round(us, 2), round(n * k * 2 / us / 1e3)]
save()
json.dump({"tile": list(best_new), "splits": 1}, open(OUT.replace(".json", "-patch.json"), "w"))
print("done", time.time() - t0, res["best_new"], res["best_old"], flush=True)
