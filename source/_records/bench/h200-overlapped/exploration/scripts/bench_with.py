"""Run `python -m nanovllm bench ...` (argv) or a profile of (a), with the sweep's configs patched in
(AB_PATCH=path). Not committed."""
import json, os, sys
sys.path.insert(0, os.path.dirname(__file__))
import torch
from nanovllm.kernels import gemv as G, decode_attention as D

path = os.environ.get("AB_PATCH")
if path and os.path.exists(path):
    patch = json.load(open(path))
    from gemv_v import gemv_v
    cfgs = {tuple(map(int, k.split(","))): v for k, v in patch.get("gemv", {}).items()}
    original = G.gemv

    def patched_gemv(x, weight, bias=None, config=None):
        cfg = cfgs.get((weight.shape[0], weight.shape[1]))
        if cfg is None or config is not None:
            return original(x, weight, bias, config)
        y = gemv_v(x, weight, *cfg)
        return y if bias is None else y + bias
    G.gemv = patched_gemv
    if patch.get("tile"):
        bn, w, st = patch["tile"]
        D.DECODE_TILE.update({"BLOCK_N": bn, "num_warps": w, "num_stages": st})
    sp = patch.get("splits", 1)
    if sp > 1:
        orig_choose = D.choose_num_splits
        D.choose_num_splits = lambda n, kv, dev: max(orig_choose(n, kv, dev), sp)
    print("patched:", patch, flush=True)

if sys.argv[1] == "profile":  # profile OUTDIR MODEL overlap gemv_rows
    from nanovllm.bench import workloads
    from nanovllm.bench.harness import warm_up
    from nanovllm.bench.profile import profile_workload
    from nanovllm.engine.overlap import make_engine
    out, model, overlap, rows = sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
    engine = make_engine(model, max_model_len=4096, max_num_seqs=256, overlap_steps=overlap,
                         gemv_max_rows=rows)
    warm_up(engine)
    wl = workloads.build("a", engine.model_config.vocab_size, False)
    s = profile_workload(engine, wl, out)
    print(json.dumps({k: s[k] for k in ("wall_s", "steps", "host_phase_s", "profiled_wall_s",
                                        "gpu_busy_s", "gpu_kernel_s_by_kind")}, indent=1))
elif sys.argv[1] == "profile1":  # decode steps at batch 1 and 256: kernels
    from nanovllm.bench.harness import warm_up
    from nanovllm.bench.profile import profile_steps
    from nanovllm.engine.overlap import make_engine
    out, model, overlap, rows = sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
    engine = make_engine(model, max_model_len=4096, max_num_seqs=256, overlap_steps=overlap,
                         gemv_max_rows=rows)
    warm_up(engine)
    profiles = {f"bs{bs}": profile_steps(engine, out, batch_size=bs) for bs in (1, 256)}
    json.dump(profiles, open(out + "/profile.json", "w"), indent=1)
    for bs, p in profiles.items():
        d = p[f"decode_{bs}"]
        print(bs, "step ms", d["step_ms_unprofiled"], sum(k["us_per_step"] for k in d["kernels"]))
else:
    from nanovllm.__main__ import main
    sys.argv = ["nanovllm"] + sys.argv[1:]
    main()
