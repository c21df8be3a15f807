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

import json
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
                output = engine.step()
                # the overlapped engine returns the step before; count the one just launched
                launched = getattr(engine, "in_flight", None)
                tokens = (output if launched is None else launched).num_prompt_tokens
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


# Kernel name fragment -> what it is, first match wins (names as the profiler shows them).
KERNEL_KINDS = [
    ("decode_attention", "attention: decode"), ("combine_splits", "attention: decode"),
    ("prefill_attention", "attention: prefill"), ("store_kvcache", "KV cache store"),
    ("qk_norm_rotary", "q/k norm and rotary"), ("gemv_kernel", "matrix products"),
    ("add_splits", "matrix products"),
    ("nccl", "communication"), ("gemm", "matrix products"), ("nvjet", "matrix products"),
    ("xmma", "matrix products"), ("cutlass", "matrix products"), ("triton_", "fused element-wise"),
    ("memcpy", "copies"), ("memset", "copies"), ("copy", "copies"), ("fill", "copies"),
]


def kernel_kind(name: str) -> str:
    lower = name.lower()
    return next((kind for fragment, kind in KERNEL_KINDS if fragment in lower),
                "other element-wise (eager)")


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals (kernels of several streams overlap)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def idle_gaps(intervals: list[tuple[float, float]], parts: int = 10) -> dict:
    """Where the GPU waited: the gaps between the union of the kernels' intervals, in all,
    by size (under 20 µs, the launches of one graph; up to 1 ms; longer), in each tenth of the
    span from the first kernel to the last, and the ten longest with where they start."""
    gaps, reach = [], None
    for start, end in sorted(intervals):
        if reach is not None and start > reach:
            gaps.append((reach, start - reach))
        reach = end if reach is None else max(reach, end)
    if not gaps:
        return {"seconds": 0.0, "count": 0}
    first, last = min(s for s, _ in intervals), reach
    span = last - first
    by_part = [0.0] * parts
    for at, length in gaps:  # a gap counts where it starts
        by_part[min(parts - 1, int((at - first) / span * parts))] += length
    sizes = {"under_20us": (0.0, 20e-6), "20us_to_1ms": (20e-6, 1e-3), "over_1ms": (1e-3, None)}
    by_size = {}
    for name, (low, high) in sizes.items():
        chosen = [g for _, g in gaps if g >= low and (high is None or g < high)]
        by_size[name] = {"count": len(chosen), "seconds": sum(chosen)}
    longest = sorted(gaps, key=lambda gap: -gap[1])[:10]
    return {"seconds": sum(g for _, g in gaps), "count": len(gaps), "by_size": by_size,
            "by_tenth_of_run_s": by_part,
            "longest": [{"ms": g * 1e3, "at_s": at - first} for at, g in longest]}


class PhaseClock:
    """Host time of each phase of ``LLMEngine.step`` (schedule, run, postprocess), summed.

    ``run`` ends with the sampled ids copied to the host, so it includes waiting for the
    GPU; ``schedule`` and ``postprocess`` are pure host work the GPU never overlaps.
    Three parts of ``run`` are clocked on their own (and stay inside ``run``'s figure):
    building the step's input arrays, building the sampling arrays, and launching the
    CUDA graph (filling its static buffers, one copy, the replay call).

    The overlapped engine (``engine/overlap.py``) has no ``run`` and ``postprocess``: its step
    is ``launch`` (queue the step; the same three parts inside it) and ``resolve`` (wait for
    the step before and finish what its tokens end), clocked under those names instead.
    """

    PARTS = ("run: inputs", "run: sampling arrays", "run: graph launch")

    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self.overlapped = hasattr(engine, "launch")
        phases = ("launch", "resolve") if self.overlapped else ("run", "postprocess")
        self.seconds = dict.fromkeys(("schedule", *phases, *self.PARTS), 0.0)

    def timed(self, name: str, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return wrapper

    def patch(self, owner, name: str, label: str, shadow: bool) -> None:
        """Wrap ``owner.name`` in a clock. ``shadow``: an instance attribute hides the class's
        method (undone by deleting it); else the attribute itself is replaced and restored."""
        original = getattr(owner, name)
        stored = vars(owner)[name] if isinstance(owner, type) else original  # a classmethod
        self.undo.append((owner, name, None if shadow else stored))
        setattr(owner, name, self.timed(label, original))

    def __enter__(self):
        from nanovllm.engine import model_runner as module

        engine, runner = self.engine, self.engine.model_runner
        self.undo = []
        try:
            if runner.fast is not None:
                self.patch(runner.fast, "prepare", "run: inputs", shadow=True)
            else:
                self.patch(module, "prepare", "run: inputs", shadow=False)
            self.patch(engine.scheduler, "schedule", "schedule", shadow=True)
            if self.overlapped:
                self.patch(engine, "launch", "launch", shadow=True)
                self.patch(engine, "resolve", "resolve", shadow=True)
            else:
                self.patch(engine.scheduler, "postprocess", "postprocess", shadow=True)
                self.patch(runner, "run", "run", shadow=True)
            self.patch(module.SamplingValues, "from_params", "run: sampling arrays",
                       shadow=False)
            if runner.graphs is not None:
                self.patch(runner.graphs, "replay", "run: graph launch", shadow=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self.undo):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self.undo = []


def profile_workload(engine: LLMEngine, workload, out_dir: str | Path) -> dict:
    """Where the whole of one workload's time goes: host phases, then GPU time per kernel.

    Two runs of the workload: one with only the host clock of each step phase (cheap, so
    its wall time is comparable with the unprofiled record), one under torch.profiler
    collecting every GPU kernel, which gives each kernel kind's total and the time the
    GPU was busy at all (the union of kernel intervals). Wall minus busy is time the GPU
    waited for the host.
    """
    from nanovllm.bench.harness import run_workload

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    use_scheduler(engine, **workload.engine_settings)
    with PhaseClock(engine) as clock:
        timed = run_workload(engine, workload)
    summary = {"workload": workload.name, "wall_s": timed["wall_time_s"], "steps": timed["steps"],
               "host_phase_s": clock.seconds}
    use_scheduler(engine, **workload.engine_settings)
    on_gpu = engine.model_runner.device.type == "cuda"
    with profile(activities=[ProfilerActivity.CUDA if on_gpu else ProfilerActivity.CPU]) as prof:
        profiled = run_workload(engine, workload)
        if on_gpu:
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if getattr(e, "device_type", None) is not None
               and e.device_type.name == "CUDA"]
    by_name: dict[str, list] = {}
    for e in kernels:
        entry = by_name.setdefault(e.name, [0, 0.0])
        entry[0] += 1
        entry[1] += (e.time_range.end - e.time_range.start) / 1e6
    by_kind: dict[str, float] = {}
    for name, (_, seconds) in by_name.items():
        by_kind[kernel_kind(name)] = by_kind.get(kernel_kind(name), 0.0) + seconds
    intervals = [(e.time_range.start / 1e6, e.time_range.end / 1e6) for e in kernels]
    summary.update({
        "profiled_wall_s": profiled["wall_time_s"],
        "gpu_busy_s": busy_seconds(intervals),
        "gpu_idle": idle_gaps(intervals),
        "gpu_kernel_s_by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
        "top_kernels": [{"name": name[:120], "calls": calls, "seconds": seconds,
                         "kind": kernel_kind(name)}
                        for name, (calls, seconds) in sorted(by_name.items(),
                                                             key=lambda kv: -kv[1][1])[:30]],
    })
    (out_dir / f"profile_workload_{workload.name[0]}.json").write_text(
        json.dumps(summary, indent=2) + "\n")
    use_scheduler(engine)
    return summary
