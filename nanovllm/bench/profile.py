"""Where the time of a step goes: torch.profiler over a prefill step and decode steps.

A throughput number says how fast; a profile says why. This fills the engine with
``batch_size`` requests of ``prompt_len`` tokens, profiles the first step (a prefill of
up to ``max_num_batched_tokens`` tokens) and then, once every request is decoding,
``decode_steps`` decode steps. For each it writes the profiler's table of kernels
sorted by GPU time and returns the top kernels with their share of the step. Kernels
replayed from a CUDA graph are listed one by one like any others.

Step times are measured separately, without the profiler, whose own overhead would
inflate them.
"""

import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from nanovllm.bench.harness import use_scheduler
from nanovllm.bench.workloads import batch
from nanovllm.engine.llm_engine import LLMEngine


def top_kernels(prof, steps: int, limit: int = 25) -> list[dict]:
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    total = sum(e.self_device_time_total for e in events)
    return [{"name": e.key[:120], "calls_per_step": e.count / steps,
             "us_per_step": e.self_device_time_total / steps,
             "share": e.self_device_time_total / total} for e in events[:limit]]


def profile_steps(engine: LLMEngine, out_dir: str | Path, batch_size: int = 256,
                  prompt_len: int = 512, decode_steps: int = 5, timed_steps: int = 20) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    use_scheduler(engine)
    workload = batch(batch_size, prompt_len, output_len=1000, seed=1,
                     vocab_size=engine.model_config.vocab_size)
    seqs = [engine.add_request(r.prompt_token_ids, workload.sampling_params(r))
            for r in workload.requests]
    summary = {"batch_size": batch_size, "prompt_len": prompt_len}
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]

    def profiled(name: str, steps: int) -> None:
        with profile(activities=activities) as prof:
            for _ in range(steps):
                tokens = engine.step().num_prompt_tokens
            torch.cuda.synchronize()
        (out_dir / f"profile_{name}.txt").write_text(prof.key_averages().table(
            sort_by="self_device_time_total", row_limit=40))
        summary[name] = {"steps": steps, "last_step_prompt_tokens": tokens,
                         "kernels": top_kernels(prof, steps)}

    profiled("prefill", 1)
    while any(seq.num_completion_tokens == 0 for seq in seqs):  # finish the prompts
        engine.step()
    profiled(f"decode_bs{batch_size}", decode_steps)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(timed_steps):
        engine.step()
    summary[f"decode_bs{batch_size}"]["step_ms_unprofiled"] = (
        (time.perf_counter() - start) / timed_steps * 1e3)
    summary[f"decode_bs{batch_size}"]["context_len_after"] = seqs[0].num_tokens
    use_scheduler(engine)  # drop the unfinished requests
    return summary
