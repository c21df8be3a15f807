"""Every measurement the book prints, from one loaded engine, in one process.

Loading a model, measuring its activations, sizing the KV cache, compiling and
capturing CUDA graphs takes tens of seconds; the measurements themselves mostly take
a few. So the suite loads the engine once and runs every workload and every variant on
it, switching settings in place (``harness.use_scheduler`` / ``use_runtime``). Runs
come in order of importance, and with ``deadline_s`` set, whatever would start after
the deadline is skipped and listed as skipped, so a time-limited GPU session still
ends with the records that matter most:

0. (GPU) the attention kernels alone (``kernel_sweep``): the decode kernel's tile that
   reads the cache fastest on this GPU is used for everything after, and recorded;
1. (b) single-request latency and (a) throughput, CUDA graphs + torch.compile;
2. profiles of a prefill step and of decode steps at batch 256 and batch 1;
3. (a) on its first ``hf_subset`` requests, the subset the transformers baseline runs;
4. (e) the batch-size sweep;
5. (c) prefix cache on and off; (d) chunked prefill on and off;
6. ablation on (a) and (b): CUDA graphs without torch.compile, then eager (no graphs, no
   compile), last because it is slowest.

The transformers baseline runs in its own process (``bench --engine transformers``),
because this engine keeps most of the GPU's memory for its KV cache.
"""

import json
import time
import traceback
from pathlib import Path

import torch

from nanovllm.bench import workloads
from nanovllm.bench.harness import run_workload, settings, use_runtime, use_scheduler, warm_up
from nanovllm.bench.profile import profile_steps, profile_workload
from nanovllm.bench.record import environment, make_record, write_record
from nanovllm.bench.roofline import decode_step_bound, hardware_for, model_cost, workload_bound
from nanovllm.engine.llm_engine import LLMEngine
from nanovllm.engine.overlap import make_engine
from nanovllm.kernels import decode_attention
from nanovllm.layers.fp8 import FP8


def tune_decode_tile(out_dir: Path, num_tiles: int | None = None) -> None:
    """Time the kernels; use the decode tile that read fastest (if clearly faster)."""
    try:
        from nanovllm.bench.kernel_sweep import TILES, sweep

        results = sweep(tiles=TILES[:num_tiles])
    except Exception:
        traceback.print_exc()
        return
    default = next(r for r in results["decode_bs256"]
                   if all(r[k] == v for k, v in decode_attention.DECODE_TILE.items()))
    best = max(results["decode_bs256"], key=lambda r: r["GB_per_s"])
    if best["GB_per_s"] > 1.03 * default["GB_per_s"]:
        decode_attention.DECODE_TILE = results["best_tile"]
    results["used_tile"] = decode_attention.DECODE_TILE
    results["environment"] = environment()
    (out_dir / "kernel_sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results["decode_bs256"]:
        print(f"decode tile {r['BLOCK_N']:>3} tokens, {r['num_warps']} warps, "
              f"{r['num_stages']} stages: {r['ms']:.3f} ms, {r['GB_per_s']:.0f} GB/s", flush=True)
    print(f"decode bs1: {results['decode_bs1_ctx768']}; prefill: {results['prefill_16x512']}; "
          f"using {decode_attention.DECODE_TILE}; max error vs torch: decode "
          f"{results['decode_max_error_vs_torch']:.2e}, prefill "
          f"{results['prefill_max_error_vs_torch']:.2e}", flush=True)
    torch.cuda.empty_cache()


def roofline_for(engine: LLMEngine, workload: workloads.Workload) -> dict | None:
    """The roofline bound for workloads (a), (b) and (e); None for the others.

    The datasheet is the GPU's own where roofline.py has it (H100, H200), else the H100's.
    """
    if workload.name[0] not in "abe":
        return None
    hardware = hardware_for(torch.cuda.get_device_name() if torch.cuda.is_available() else "")
    runner = engine.model_runner
    cost = model_cost(engine.model_config, runner.dtype.itemsize, runner.cache_dtype == FP8)
    lengths = [(len(r.prompt_token_ids), r.max_tokens) for r in workload.requests]
    bound = workload_bound(cost, lengths, hardware, engine.config.max_num_batched_tokens)
    if len(lengths) == 1:  # one request: the floor of its time per output token
        prompt, output = lengths[0]
        steps = [decode_step_bound(cost, [prompt + k], hardware) for k in range(1, output)]
        bound["tpot_floor_ms"] = sum(steps) / len(steps) * 1e3
    return bound


class Suite:
    def __init__(self, engine: LLMEngine, out_dir: Path, deadline_s: float | None,
                 started: float):
        self.engine, self.out_dir, self.deadline_s = engine, out_dir, deadline_s
        self.start = started
        self.env = environment()
        self.skipped: list[str] = []
        self.lines: list[str] = []

    def time_left(self) -> bool:
        return self.deadline_s is None or time.perf_counter() - self.start < self.deadline_s

    def measure(self, workload: workloads.Workload, variant: str, **scheduler_fields) -> None:
        label = f"{workload.name} {variant}"
        if not self.time_left():
            self.skipped.append(label)
            return
        try:
            use_scheduler(self.engine, **{**workload.engine_settings, **scheduler_fields})
            results = run_workload(self.engine, workload)
        except Exception:  # record the failure, keep measuring the rest
            traceback.print_exc()
            self.skipped.append(f"{label} (failed)")
            return
        record = make_record(workload.summary(), "nanovllm", settings(self.engine, variant),
                             results, self.env, roofline=roofline_for(self.engine, workload))
        write_record(record, self.out_dir)
        tpot = results["tpot_ms"]["p50"] if results["tpot_ms"] else float("nan")
        line = (f"{label:<28} {results['output_tokens_per_s']:>9.0f} out tok/s "
                f"{results['total_tokens_per_s']:>9.0f} total tok/s  TTFT p50 "
                f"{results['ttft_ms']['p50']:8.1f} ms  TPOT p50 {tpot:6.2f} ms  "
                f"ITL p99 {(results['itl_ms'] or {}).get('p99', float('nan')):7.2f} ms  "
                f"wall {results['wall_time_s']:6.2f} s")
        self.lines.append(line)
        print(line, flush=True)


def run_suite(model: str, out_dir: str | Path, deadline_s: float | None = None,
              hf_subset: int = 64, small: bool = False, profile: bool = True,
              sweep_tiles: int | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if sweep_tiles != 0 and torch.cuda.is_available() and not small:
        tune_decode_tile(out_dir, sweep_tiles)
    engine_started = time.perf_counter()
    limits = dict(max_model_len=256 if small else 4096, max_num_seqs=16 if small else 256)
    try:
        engine = make_engine(model, **limits)
    except Exception:  # e.g. torch.compile unusable here: measure without it
        traceback.print_exc()
        engine = make_engine(model, **limits, enable_torch_compile=False)
    startup_s = time.perf_counter() - engine_started
    warm_up(engine)
    print(f"engine ready in {startup_s:.1f} s (+ warm-up "
          f"{time.perf_counter() - engine_started - startup_s:.1f} s)", flush=True)
    suite = Suite(engine, out_dir, deadline_s, started)
    vocab = engine.model_config.vocab_size

    def build(name: str, **overrides) -> workloads.Workload:
        return workloads.build(name, vocab, small, **overrides)

    on_gpu = engine.model_runner.device.type == "cuda"
    single, throughput = build("b"), build("a")
    best = "graphs+compile" if on_gpu else "cpu"
    suite.measure(single, best)
    suite.measure(throughput, best)
    if profile and on_gpu and suite.time_left():
        try:
            profiles = {f"bs{bs}": profile_steps(engine, out_dir, batch_size=bs)
                        for bs in (256, 1)}
            (out_dir / "profile.json").write_text(json.dumps(profiles, indent=2) + "\n")
        except Exception:
            traceback.print_exc()
    if profile and on_gpu and suite.time_left():
        try:
            whole = profile_workload(engine, throughput, out_dir)
            print(f"profile of (a): wall {whole['wall_s']:.2f} s, host phases "
                  f"{whole['host_phase_s']}, GPU busy {whole['gpu_busy_s']:.2f} s of "
                  f"{whole['profiled_wall_s']:.2f} s profiled; by kind "
                  f"{whole['gpu_kernel_s_by_kind']}", flush=True)
        except Exception:
            traceback.print_exc()
    suite.measure(throughput.subset(hf_subset), best)

    def ablation(graphs: bool, compiled: bool, variant: str | None) -> None:
        if on_gpu and suite.time_left():
            use_runtime(engine, cuda_graphs=graphs, torch_compile=compiled)
            warm_up(engine)  # eager decode compiles kernel variants the graphs never needed
            if variant:
                suite.measure(single, variant)
                suite.measure(throughput, variant)

    sizes = workloads.SMALL_SWEEP_BATCH_SIZES if small else workloads.SWEEP_BATCH_SIZES
    for size in sizes:
        suite.measure(build("e", batch_size=size), f"bs{size}")
    shared = build("c")
    suite.measure(shared, "prefix-cache-on", enable_prefix_caching=True)
    suite.measure(shared, "prefix-cache-off", enable_prefix_caching=False)
    mixed = build("d")
    small_budget = 64 if small else 1024
    suite.measure(mixed, f"chunked-{small_budget}", enable_chunked_prefill=True,
                  max_num_batched_tokens=small_budget)
    suite.measure(mixed, f"unchunked-{mixed.engine_settings['max_model_len']}",
                  enable_chunked_prefill=False,
                  max_num_batched_tokens=mixed.engine_settings["max_model_len"])
    ablation(True, False, "graphs")
    ablation(False, False, "eager")  # last: the slowest runs
    (out_dir / "suite.json").write_text(json.dumps(
        {"engine_startup_s": startup_s, "suite_s": time.perf_counter() - started,
         "skipped": suite.skipped, "lines": suite.lines}, indent=2) + "\n")
    if suite.skipped:
        print("skipped (deadline):", ", ".join(suite.skipped), flush=True)
    return out_dir
