"""Where does an overlapped prefill launch wait for the GPU? (exploration, not committed)"""
import sys, time, traceback, warnings, json
import torch
from nanovllm.engine.overlap import make_engine
from nanovllm.bench import workloads
from nanovllm.bench.harness import warm_up
out = open(sys.argv[2], "w")
e = make_engine(sys.argv[1], max_model_len=4096, max_num_seqs=256, overlap_steps=True)
warm_up(e)
wl = workloads.build("c", e.model_config.vocab_size, False)
for r in wl.requests:
    e.add_request(r.prompt_token_ids, wl.sampling_params(r))
times = []
def clock(name, f):
    def w(*a, **k):
        torch.cuda.synchronize() if name == "sync" else None
        t = time.perf_counter(); r = f(*a, **k); times.append((name, round((time.perf_counter() - t) * 1e3, 2)))
        return r
    return w
e.launch = clock("launch", e.launch); e.resolve = clock("resolve", e.resolve)
seen = set()
def show(message, category, filename, lineno, file=None, line=None):
    stack = "".join(traceback.format_stack(limit=14)[:-2])
    key = stack[-600:]
    if key in seen: return
    seen.add(key); out.write(f"--- {message}\n{stack}\n")
warnings.showwarning = show
torch.cuda.set_sync_debug_mode("warn")
for k in range(6):
    t = time.perf_counter(); o = e.step(); torch_t = (time.perf_counter() - t) * 1e3
    times.append(("step", k + 1, round(torch_t, 2), o.num_prompt_tokens, len(o.sampled)))
torch.cuda.set_sync_debug_mode(0)
out.write(json.dumps(times) + "\n"); out.close()
