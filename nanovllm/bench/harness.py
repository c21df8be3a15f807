"""Run a workload through the engine one step at a time, and time every token.

The harness drives ``LLMEngine`` directly (``add_request`` and ``step``) rather than
``LLM.generate``, because it needs the moment each token appears: ``step()`` returns
once the tokens it reports are on the host (the overlapped engine's are the previous
step's), so the clock read right after it returns is when they exist. From those
timestamps, per request:

* TTFT (time to first token): first token's time minus the request's arrival;
* TPOT (time per output token): (last token's time - first token's time) / (tokens - 1),
  the request's average decode pace;
* ITL (inter-token latency): every gap between two consecutive tokens of a request,
  pooled over requests. A long prefill that stalls running requests shows up here,
  in the tail, even when it barely moves a request's average.

Percentiles are numpy's (linear interpolation). Throughput counts output tokens (and
prompt plus output tokens) over the wall time from the first request's arrival to the
last token. Warm-up runs first, so compilation never lands inside a measurement.

Variants of one loaded engine (scheduler settings, CUDA graphs, torch.compile) are
switched in place by ``use_scheduler`` and ``use_runtime``: the weights and the KV cache
stay the same between the runs being compared.
"""

import dataclasses
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nanovllm.bench.workloads import Request, Workload
from nanovllm.engine.kv_cache import block_bytes
from nanovllm.engine.llm_engine import LLMEngine
from nanovllm.engine.torch_compile import PIECES, compile_small_ops
from nanovllm.kernels import decode_attention
from nanovllm.kernels.gemv import use_gemv
from nanovllm.layers.fp8 import FP8


@dataclass
class RequestTrace:
    arrival: float
    token_times: list[float] = field(default_factory=list)


def percentiles(seconds: list[float]) -> dict | None:
    """p50 / p90 / p99 / mean in milliseconds (None when there is nothing to measure)."""
    if not seconds:
        return None
    values = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99),
            "mean": float(values.mean()), "count": len(values)}


def summarize(traces: list[RequestTrace], prompt_tokens: int, wall: float) -> dict:
    output_tokens = sum(len(t.token_times) for t in traces)
    return {
        "wall_time_s": wall,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "output_tokens_per_s": output_tokens / wall,
        "total_tokens_per_s": (prompt_tokens + output_tokens) / wall,
        "ttft_ms": percentiles([t.token_times[0] - t.arrival for t in traces if t.token_times]),
        "tpot_ms": percentiles([(t.token_times[-1] - t.token_times[0]) / (len(t.token_times) - 1)
                                for t in traces if len(t.token_times) > 1]),
        "itl_ms": percentiles([b - a for t in traces
                               for a, b in zip(t.token_times[:-1], t.token_times[1:], strict=True)]),
    }


def run_workload(engine: LLMEngine, workload: Workload) -> dict:
    """Run every request of the workload to completion; return the measured results."""
    pending = sorted(enumerate(workload.requests), key=lambda item: item[1].arrival_step)
    traces: dict[int, RequestTrace] = {}
    on_gpu = engine.model_runner.device.type == "cuda"
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    preemptions_before = engine.num_preemptions
    step = 0
    start = time.perf_counter()
    while pending or not engine.is_finished():
        if engine.is_finished():  # idle until the next arrival: skip ahead
            step = max(step, pending[0][1].arrival_step)
        now = time.perf_counter()
        while pending and pending[0][1].arrival_step <= step:
            _, request = pending.pop(0)
            seq = engine.add_request(request.prompt_token_ids, workload.sampling_params(request))
            traces[seq.seq_id] = RequestTrace(arrival=now)
        output = engine.step()
        finished_at = time.perf_counter()
        step += 1
        for seq, _ in output.sampled:
            traces[seq.seq_id].token_times.append(finished_at)
    wall = time.perf_counter() - start
    results = summarize(list(traces.values()), workload.num_prompt_tokens, wall)
    results["steps"] = step
    results["preemptions"] = engine.num_preemptions - preemptions_before
    if on_gpu:
        runner = engine.model_runner
        results["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        one_block = block_bytes(engine.model_config, runner.block_size, runner.cache_dtype,
                                engine.config.tensor_parallel_size)  # with an fp8 cache's scales
        results["kv_cache_gib"] = runner.num_blocks * one_block / 2**30
    return results


def warm_up(engine: LLMEngine, temperature: float = 0.6) -> None:
    """Compile what a measurement would otherwise compile: the Triton kernels for short,
    medium and long chunks and for block tables of 1, 2 and 16 blocks, the sampler's
    kernel, and decode at a few batch sizes."""
    block_size = engine.config.block_size
    vocab = engine.model_config.vocab_size
    longest = engine.config.max_model_len - 8
    for length in (8, 2 * block_size - 8, min(16 * block_size, longest)):
        for count in (1, 3):
            requests = [Request([(7 * i + j) % vocab for j in range(length)], 4)
                        for i in range(count)]
            run_workload(engine, Workload("warm-up", "", requests, {}, temperature))


def use_scheduler(engine: LLMEngine, **fields) -> None:
    """A fresh scheduler (empty queues, cold prefix cache) with these Config fields changed."""
    config = dataclasses.replace(engine.config, **fields)
    engine.config = config
    engine.scheduler = engine.new_scheduler(config)


def uncompile_small_ops(model: torch.nn.Module) -> None:
    """Undo ``compile_small_ops``: the class's eager functions show through again."""
    for module in model.modules():
        for name in PIECES.get(type(module), ()):
            module.__dict__.pop(name, None)


def use_runtime(engine: LLMEngine, cuda_graphs: bool, torch_compile: bool) -> None:
    """Switch CUDA graphs and torch.compile of the loaded engine (GPU), recapturing graphs."""
    runner = engine.model_runner
    if runner.device.type != "cuda":
        return
    (compile_small_ops if torch_compile else uncompile_small_ops)(runner.model)
    use_gemv(runner.model, engine.config.gemv_max_rows if cuda_graphs else 0)  # as ModelRunner
    runner.graphs = None
    gc.collect()
    torch.cuda.empty_cache()
    if cuda_graphs:
        runner.graphs = runner.capture_graphs()
    changed = dict(enforce_eager=not cuda_graphs, enable_torch_compile=torch_compile)
    engine.config = dataclasses.replace(engine.config, **changed)
    runner.config = dataclasses.replace(runner.config, **changed)


def settings(engine: LLMEngine, variant: str) -> dict:
    """The settings a record states: every Config field (the model by folder name only)."""
    fields = dataclasses.asdict(engine.config)
    fields["model"] = Path(fields["model"]).name if fields["model"] else "(bundled tiny model)"
    runner = engine.model_runner
    on_gpu = runner.device.type == "cuda"
    return {"variant": variant, **fields, "resolved_device": runner.device.type,
            "resolved_dtype": str(runner.dtype).removeprefix("torch."),
            "cuda_graphs": runner.graphs is not None,
            "torch_compile": on_gpu and fields["enable_torch_compile"],
            "overlapped": engine.overlaps,  # engine/overlap.py's engine ran
            "resolved_kv_cache_dtype": str(runner.cache_dtype).removeprefix("torch."),
            "gemv": on_gpu and runner.dtype in (torch.bfloat16, torch.float16)
            and any("product" in vars(m) for m in runner.model.modules()),
            "decode_tile": dict(decode_attention.DECODE_TILE if runner.cache_dtype != FP8
                                else decode_attention.FP8_DECODE_TILE)}
