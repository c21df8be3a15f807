"""The baseline: Hugging Face ``transformers`` ``generate`` on the same weights and requests.

This is what a reader would write without an inference engine, done as well as it
reasonably can be: the model in bf16 (float32 on a CPU) with PyTorch's fused SDPA
attention, all requests of a batch padded on the left to one length and generated
together, sampling with the workload's temperature (no top-k, no top-p) and no stop on
EOS. What ``generate`` cannot do is the point of the comparison: it has no paged KV
cache and no continuous batching, so a batch runs until its longest request is done
(rows that finished early keep computing tokens nobody asked for, which are not
counted) and a new request waits for the whole batch.

Token times come from a streamer, which ``generate`` calls once per step with that
step's tokens; the GPU is synchronised there so that the clock reads when the tokens
exist. If ``max_time`` stops a run early, only the tokens produced are counted and the
record says so.
"""

import time

import torch

from nanovllm.bench.harness import RequestTrace, summarize
from nanovllm.bench.workloads import Workload


class StepClock:
    """A ``generate`` streamer that notes when each step's tokens exist."""

    def __init__(self, device: torch.device):
        self.device, self.times, self.calls = device, [], 0

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 1:  # the first call hands over the prompt, not a new token
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def run_transformers(folder: str, workload: Workload, device: str = "auto",
                     batch_size: int | None = None, max_time: float | None = None,
                     pad_token_id: int = 0) -> tuple[dict, dict]:
    """Return (results, settings) for the workload run with ``generate``."""
    import transformers

    device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                          else "cpu" if device == "auto" else device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, attn_implementation="sdpa").to(device).eval()
    requests = workload.requests
    if any(r.arrival_step for r in requests):
        raise ValueError("the transformers baseline runs offline workloads (all arrivals at 0)")
    batch_size = batch_size or len(requests)
    traces, truncated = [], False
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for first in range(0, len(requests), batch_size):
        chunk = requests[first:first + batch_size]
        width = max(len(r.prompt_token_ids) for r in chunk)
        input_ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, request in enumerate(chunk):  # left padding: every prompt ends at the right
            n = len(request.prompt_token_ids)
            input_ids[row, width - n:] = torch.tensor(request.prompt_token_ids)
            attention_mask[row, width - n:] = 1
        new_tokens = max(r.max_tokens for r in chunk)
        clock = StepClock(device)
        left = None if max_time is None else max(max_time - (time.perf_counter() - start), 0.1)
        with torch.inference_mode():
            model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                           do_sample=workload.temperature > 0, temperature=workload.temperature,
                           top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, pad_token_id=pad_token_id, streamer=clock,
                           max_time=left)
        truncated |= len(clock.times) < new_tokens
        traces += [RequestTrace(arrival=start, token_times=clock.times[:r.max_tokens])
                   for r in chunk]
        if truncated:
            break
    wall = time.perf_counter() - start
    done = len(traces)
    prompt_tokens = sum(len(r.prompt_token_ids) for r in requests[:done])
    results = summarize(traces, prompt_tokens, wall)
    results["requests_run"] = done
    results["stopped_by_max_time"] = truncated
    if device.type == "cuda":
        results["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    settings = {"variant": f"generate-bs{batch_size}", "batch_size": batch_size,
                "attn_implementation": "sdpa", "dtype": str(dtype).removeprefix("torch."),
                "device": device.type, "padding": "left", "top_k": 0, "top_p": 1.0,
                "max_time_s": max_time}
    return results, settings
