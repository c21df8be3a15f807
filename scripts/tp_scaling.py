"""Tensor-parallel scaling on one machine's GPUs (the records of chapter 9).

    python scripts/tp_scaling.py MODEL_FOLDER OUT_DIR [--sizes 1 2 4]

For each tensor-parallel size N:

1. correctness: greedy decoding (32 tokens) of 8 fixed prompts in float32, eager, must
   give the same tokens as N=1 (in bfloat16 the all-reduce adds partial sums in another
   order, and a random model's near-tied logits may then flip, so the check is float32);
2. speed, in the checkpoint's bfloat16 with CUDA graphs: the benchmark's workload (a)
   (``nanovllm.bench.workloads.throughput``: 256 requests with prompt and output lengths
   uniform in [100, 1024], seed 0, random prompt ids, ignore_eos, temperature 0.6,
   max_model_len 4096, max_num_seqs 256; ``--num-requests`` shortens it); and one
   request alone (128-token prompt, 256 tokens greedy) for the per-token latency.

Each size runs in a child process limited to --limit-s seconds, so a hang in one size
is recorded (with the stacks that ``faulthandler`` prints) and the next size still runs.
Writes OUT_DIR/tp{N}.json per size and prints a table last.
"""

import argparse
import datetime
import faulthandler
import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from nanovllm import SamplingParams
from nanovllm.bench.record import engine_commit
from nanovllm.bench.workloads import throughput
from nanovllm.llm import LLM

GREEDY = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)
TP_TIMEOUT_S = 60  # a first step may compile Triton kernels for a while; start-up may take 600 s
STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", flush=True)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def greedy_prompts(vocab_size: int) -> list[list[int]]:
    rng = random.Random(1)
    return [[rng.randrange(vocab_size) for _ in range(n)]
            for n in (5, 17, 64, 100, 250, 333, 512, 1000)]


def workload_a(vocab_size: int, num_requests: int, max_len: int):
    workload = throughput(num_requests=num_requests, max_len=max_len, vocab_size=vocab_size)
    return ([r.prompt_token_ids for r in workload.requests],
            [workload.sampling_params(r) for r in workload.requests])


def machine() -> dict:
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.split()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        driver = "unknown"
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    if not torch.cuda.is_available():
        return {"device": "cpu", "gpus": 0, "driver": None, "torch": torch.__version__,
                "triton": triton_version}
    return {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
            "driver": driver, "torch": torch.__version__, "triton": triton_version}


def measure(folder: str, size: int, reference: list | None, num_requests: int,
            max_len: int) -> dict:
    vocab_size = json.loads((Path(folder) / "config.json").read_text())["vocab_size"]
    record: dict = {"tensor_parallel_size": size}
    log(f"TP={size}: float32 engine for the greedy check")
    with LLM(folder, tensor_parallel_size=size, dtype="float32", enforce_eager=True,
             num_kvcache_blocks=512, max_num_seqs=8, tp_timeout_s=TP_TIMEOUT_S) as llm:
        log(f"TP={size}: greedy decoding")
        outputs = llm.generate(greedy_prompts(vocab_size), GREEDY, use_tqdm=False)
    record["greedy_fp32_tokens"] = [o.token_ids for o in outputs]
    if reference is not None:
        record["greedy_fp32_same_as_tp1"] = record["greedy_fp32_tokens"] == reference
    del llm, outputs
    free_memory()

    log(f"TP={size}: bfloat16 engine with CUDA graphs")
    started = time.perf_counter()
    with LLM(folder, tensor_parallel_size=size, max_model_len=4096, max_num_seqs=256,
             tp_timeout_s=TP_TIMEOUT_S) as llm:
        record["startup_s"] = round(time.perf_counter() - started, 2)
        record["kv_blocks"] = llm.engine.model_runner.num_blocks
        llm.generate([[1, 2, 3]], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
        prompts, params = workload_a(vocab_size, num_requests, max_len)
        log(f"TP={size}: workload")
        synchronize()
        started = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - started
        run = llm.last_run
        record.update(workload=f"(a): {num_requests} requests, prompt and output "
                               f"lengths uniform in [100, {max_len}]",
                      wall_s=round(wall, 3), prompt_tokens=run.prompt_tokens,
                      output_tokens=run.generated_tokens,
                      output_tok_s=round(run.generated_tokens / wall, 1),
                      total_tok_s=round((run.prompt_tokens + run.generated_tokens) / wall, 1))
        one = SamplingParams(temperature=0.0, max_tokens=256, ignore_eos=True)
        started = time.perf_counter()
        llm.generate([prompts[0][:128]], one, use_tqdm=False)
        record["single_request_ms_per_token"] = round(
            (time.perf_counter() - started) / 256 * 1000, 3)
    del llm
    free_memory()
    return record


def run_one(args, common: dict) -> None:
    """One size, in its own process: a hang cannot take the other sizes with it."""
    faulthandler.dump_traceback_later(max(1.0, args.limit_s - 5))  # where we were, if we overrun
    out = Path(args.out)
    reference_file = out / "tp1.json"
    reference = None
    if args.one != 1 and reference_file.exists():
        reference = json.loads(reference_file.read_text()).get("greedy_fp32_tokens")
    try:
        record = {**common, **measure(args.model, args.one, reference, args.num_requests,
                                    args.max_len)}
    except Exception as error:
        record = {**common, "tensor_parallel_size": args.one, "error": repr(error)}
    (out / f"tp{args.one}.json").write_text(json.dumps(record, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit-s", type=float, default=120, help="per size")
    parser.add_argument("--num-requests", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = {**machine(), "engine_commit": engine_commit(),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "model": "Qwen3-0.6B configuration, random weights (bfloat16 checkpoint)",
              "settings": {"max_model_len": 4096, "max_num_seqs": 256, "dtype": "bfloat16",
                           "cuda_graphs": True, "seed": 0,
                           "tp_timeout_s": TP_TIMEOUT_S}}
    if args.one is not None:
        return run_one(args, common)
    records = []
    for size in args.sizes:
        log(f"TP={size}: start")
        child = subprocess.Popen([sys.executable, __file__, args.model, args.out,
                                  "--one", str(size), "--limit-s", str(args.limit_s),
                                  "--num-requests", str(args.num_requests),
                                  "--max-len", str(args.max_len)], start_new_session=True)
        try:
            child.wait(timeout=args.limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the driver and its workers
            child.wait()
            (out / f"tp{size}.json").write_text(json.dumps(
                {**common, "tensor_parallel_size": size,
                 "error": f"did not finish within {args.limit_s:g} s"}, indent=1) + "\n")
        path = out / f"tp{size}.json"
        record = json.loads(path.read_text()) if path.exists() else {
            "tensor_parallel_size": size, "error": f"exit code {child.returncode}, no record"}
        records.append(record)
        log(json.dumps({k: v for k, v in record.items() if k != "greedy_fp32_tokens"}))
    print(f"\n{common['device']} x{common['gpus']}, driver {common['driver']}, "
          f"torch {common['torch']}, triton {common['triton']}")
    print("TP | greedy fp32 = TP1 | wall s | output tok/s | total tok/s | ms/token (1 req)")
    for r in records:
        if "error" in r:
            print(f"{r['tensor_parallel_size']:2} | error: {r['error'][:200]}")
            continue
        print(f"{r['tensor_parallel_size']:2} | {str(r.get('greedy_fp32_same_as_tp1', 'ref')):17} | "
              f"{r['wall_s']:6.2f} | {r['output_tok_s']:12.0f} | {r['total_tok_s']:11.0f} | "
              f"{r['single_request_ms_per_token']:.2f}")


if __name__ == "__main__":
    main()
