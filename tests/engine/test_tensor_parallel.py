"""Tensor parallelism on CPU (gloo): same logits and tokens as one process, clean failures.

* The layers: ranks spawned here each build their shard of the tiny random model, read
  only their share of the checkpoint, and compute one packed prefill; rank 0's gathered
  logits equal the unsplit model's to float32 rounding (TP=2, and TP=4, where the 2 KV
  heads are replicated, not split).
* The engine: ``LLM(tensor_parallel_size=N)`` decodes the same greedy tokens as N=1.
* Failures: a killed worker, or a stopped (hung) one, makes generation fail with an
  error naming the rank and the cause; Ctrl-C stops the workers; no process is left.
  The runner keeps failing with that error until closed, and a new engine then works.
  A driver that fails by itself raises its own error, whatever the workers did; a
  worker that fails to start is named, with its traceback.
* Agreement: the watchdog never trips a step the driver has finished, and the ranks
  keep CUDA graphs only if every rank captured them (checked over gloo with a capture
  that fails on one rank, since real capture needs GPUs).
"""

import json
import operator
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from nanovllm.config import Config
from nanovllm.engine import tp_runner
from nanovllm.engine.cuda_graph import capture_all
from nanovllm.engine.model_runner import ModelRunner, prepare
from nanovllm.engine.parallel import fewest_across_group, free_port, join_group
from nanovllm.engine.tp_supervisor import Watchdog, leave_group
from nanovllm.layers.linear import QKVParallelLinear, Shard
from nanovllm.llm import LLM
from nanovllm.models.model_config import ModelConfig
from nanovllm.sampling_params import SamplingParams
from tests.engine.model_fixtures import packed_logits, tiny_checkpoint

REPO = Path(__file__).parents[2]
GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


def prompts(lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 320, (n,), generator=generator).tolist() for n in lengths]


PROMPTS = prompts([1, 7, 16, 17, 40])


def child_pids() -> set[int]:
    """Live (not zombie) processes whose parent is this one."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                children.add(int(entry.name))
    return children


def worker_pids(llm) -> list[int]:
    return [p.pid for p in llm.engine.model_runner.processes.values()]


def assert_gone(pids) -> None:
    assert not mp.active_children()
    assert not set(pids) & child_pids()
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def run_shard(rank, size, port, folder, results):
    """One rank of the layer test (runs in a spawned process)."""
    torch.set_num_threads(1)
    config = Config(model=str(folder), device="cpu", dtype="float32", num_kvcache_blocks=64,
                    tensor_parallel_size=size)
    join_group(rank, size, port, torch.device("cpu"), timeout_s=120)
    try:
        runner = ModelRunner(config, ModelConfig.from_folder(folder), folder, rank)
        logits = packed_logits(runner, PROMPTS)
        param_bytes = sum(p.numel() * p.element_size() for p in runner.model.parameters())
        results.put((rank, runner.bytes_loaded, param_bytes,
                     None if logits is None else logits.numpy()))
    finally:
        leave_group()


def test_fewer_kv_heads_than_gpus_replicates_them():
    """2 KV heads on 4 GPUs: GPUs 0-1 keep KV head 0, GPUs 2-3 KV head 1; query heads split."""
    hidden, head_dim, heads, kv_heads = 8, 2, 4, 2
    q = torch.arange(heads * head_dim * hidden, dtype=torch.float32).view(-1, hidden)
    k, v = 1000 + q[:kv_heads * head_dim], 2000 + q[:kv_heads * head_dim]
    for rank in range(4):
        layer = QKVParallelLinear(hidden, head_dim, heads, kv_heads, shard=Shard(rank, 4))
        for name, full in zip("qkv", (q, k, v), strict=True):
            layer.weight.weight_loader(layer.weight, full, name)
        kv_head = rank // 2
        assert layer.num_local_kv_heads == 1
        torch.testing.assert_close(layer.weight, torch.cat([
            q[rank * head_dim:(rank + 1) * head_dim],
            k[kv_head * head_dim:(kv_head + 1) * head_dim],
            v[kv_head * head_dim:(kv_head + 1) * head_dim]]), rtol=0, atol=0)


@pytest.mark.parametrize("size", [2, 4])
def test_shards_read_only_their_part_and_give_the_same_logits(size):
    folder = tiny_checkpoint("qwen3")
    config = Config(model=str(folder), device="cpu", dtype="float32", num_kvcache_blocks=64)
    whole = ModelRunner(config, ModelConfig.from_folder(folder), folder)
    expected = packed_logits(whole, PROMPTS)
    spawn, port = mp.get_context("spawn"), free_port()
    results = spawn.Queue()
    ranks = [spawn.Process(target=run_shard, args=(rank, size, port, folder, results))
             for rank in range(size)]
    for process in ranks:
        process.start()
    by_rank = {rank: rest for rank, *rest in (results.get(timeout=120) for _ in ranks)}
    for process in ranks:
        process.join()
    assert [p.exitcode for p in ranks] == [0] * size
    for rank, (bytes_read, param_bytes, logits) in by_rank.items():
        # each rank reads exactly its own parameters' bytes, far less than the checkpoint
        assert bytes_read == param_bytes < whole.bytes_loaded * 0.6
        assert (logits is None) == (rank != 0)
    torch.testing.assert_close(torch.from_numpy(by_rank[0][2]), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [2, 4])
def test_greedy_tokens_match_one_process_and_close_leaves_no_process(size):
    folder = str(tiny_checkpoint("qwen3"))
    settings = dict(device="cpu", dtype="float32", num_kvcache_blocks=64, max_num_seqs=4)
    expected = [o.token_ids for o in LLM(folder, **settings).generate(PROMPTS, GREEDY,
                                                                      use_tqdm=False)]
    with LLM(folder, tensor_parallel_size=size, **settings) as llm:
        pids = worker_pids(llm)
        assert len(pids) == size - 1 and set(pids) <= child_pids()
        outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
        assert [o.token_ids for o in outputs] == expected
    assert_gone(pids)
    with pytest.raises(RuntimeError, match="the engine was closed"):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False)


def test_killed_worker_fails_generation_with_its_rank_and_cause():
    llm = LLM(str(tiny_checkpoint("qwen3")), device="cpu", dtype="float32",
              num_kvcache_blocks=64, tensor_parallel_size=2)
    pids = worker_pids(llm)
    events = llm.stream(PROMPTS, GREEDY)
    for _ in range(3):
        next(events)
    os.kill(pids[0], signal.SIGKILL)
    rest = list(events)  # every unfinished request ends with the error; the stream ends
    failed = [e for e in rest if e.finish_reason == "error"]
    assert sorted(e.index for e in failed) == list(range(len(PROMPTS)))
    assert all(e.error.startswith("RuntimeError: tensor parallelism failed: tensor-parallel "
                                  "worker rank 1 was killed by SIGKILL") for e in failed)
    assert_gone(pids)
    assert llm.engine.is_finished()
    with pytest.raises(RuntimeError, match="cannot run any more"):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False)


def test_a_worker_error_comes_back_with_its_traceback():
    llm = LLM(str(tiny_checkpoint("qwen3")), device="cpu", dtype="float32",
              num_kvcache_blocks=64, tensor_parallel_size=2)
    pids = worker_pids(llm)
    llm.engine.model_runner.conns[1].send_bytes(pickle.dumps("not input arrays"))  # worker fails
    outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert {o.finish_reason for o in outputs} == {"error"}
    assert re.match(r"(?s)RuntimeError: tensor parallelism failed: tensor-parallel worker rank 1 "
                    r"exited with code 1\n--- rank 1 reported ---\nTraceback.*AttributeError",
                    outputs[0].error), outputs[0].error
    assert_gone(pids)


def one_prefill(block_size: int):
    """A step's input arrays: one 40-token prompt chunk, nothing sampled."""
    seq = SimpleNamespace(token_ids=PROMPTS[4], num_computed_tokens=0,
                          block_table=list(range(-(-40 // block_size))))
    batch = SimpleNamespace(seqs=[seq], num_new_tokens=[40], is_prefill=[True],
                            do_sample=[False])
    return prepare(batch, block_size)


def test_after_a_killed_worker_every_step_fails_and_a_new_llm_works():
    folder = str(tiny_checkpoint("qwen3"))
    settings = dict(device="cpu", dtype="float32", num_kvcache_blocks=64, max_num_seqs=4,
                    tensor_parallel_size=2, tp_timeout_s=5)
    llm = LLM(folder, **settings)
    expected = [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)]
    runner, pids = llm.engine.model_runner, worker_pids(llm)
    os.kill(pids[0], signal.SIGKILL)
    message = "tensor parallelism failed: tensor-parallel worker rank 1 was killed by SIGKILL"
    start = time.monotonic()
    with pytest.raises(RuntimeError) as failed:
        runner.run_inputs(one_prefill(runner.block_size), None)
    assert time.monotonic() - start < 5  # within tp_timeout_s
    assert str(failed.value) == message
    for step in (lambda: runner.run_inputs(one_prefill(runner.block_size), None),
                 lambda: runner.run(None)):  # refused before the batch is looked at
        with pytest.raises(RuntimeError) as again:
            step()
        assert str(again.value) == f"{message}; this LLM cannot run any more, make a new one"
    start = time.monotonic()
    llm.close()
    assert time.monotonic() - start < 2
    assert_gone(pids)
    assert not dist.is_initialized()
    with LLM(folder, **settings) as fresh:
        assert [o.token_ids for o in fresh.generate(PROMPTS, GREEDY, use_tqdm=False)] == expected


def without_tensor(folder: Path, name: str, into: Path) -> Path:
    """A copy of the checkpoint ``folder`` lacking the tensor ``name``."""
    into.mkdir()
    for path in folder.iterdir():
        if path.suffix == ".safetensors":
            tensors = load_file(path)
            tensors.pop(name, None)
            save_file(tensors, into / path.name)
        else:
            (into / path.name).write_bytes(path.read_bytes())
    return into


def test_the_drivers_own_load_failure_is_the_error_even_when_workers_fail_too(tmp_path):
    """Every rank fails to load the same bad checkpoint; the driver's error comes out."""
    folder = without_tensor(tiny_checkpoint("qwen3"), "model.norm.weight", tmp_path / "bad")
    before = child_pids()
    with pytest.raises(ValueError) as failed:
        LLM(str(folder), device="cpu", dtype="float32", num_kvcache_blocks=64,
            tensor_parallel_size=2)
    assert str(failed.value) == (f"{folder}: the checkpoint lacks 1 expected tensor(s), "
                                 f"e.g. ['model.norm.weight']")
    # What rank 1 did is attached, when it got that far within the wait: the same failure.
    notes = getattr(failed.value, "__notes__", [])
    assert notes[:-1] in ([], ["meanwhile tensor-parallel worker rank 1 exited with code 1"])
    if notes:
        assert notes[-1].startswith("--- rank 1 reported ---\nTraceback")
        assert notes[-1].endswith(f"ValueError: {failed.value}")
    assert not mp.active_children() and child_pids() <= before
    assert not dist.is_initialized()


def worker_with_a_missing_folder(rank, config, model_config, folder, port, conn):
    """tp_worker.worker_main, given a model folder that does not exist (rank 1 only)."""
    tp_runner.worker_main(rank, config, model_config, Path(folder) / "missing", port, conn)


def test_a_worker_that_fails_to_start_is_named_with_its_traceback(monkeypatch):
    folder = tiny_checkpoint("qwen3")
    monkeypatch.setattr(tp_runner, "worker_main", worker_with_a_missing_folder)
    with pytest.raises(RuntimeError, match=(
            r"(?s)^tensor parallelism failed: tensor-parallel worker rank 1 exited with code 1\n"
            r"--- rank 1 reported ---\nTraceback \(most recent call last\):\n.*"
            rf"FileNotFoundError: {re.escape(str(folder / 'missing'))}: model folder not found$")):
        LLM(str(folder), device="cpu", dtype="float32", num_kvcache_blocks=64,
            tensor_parallel_size=2)
    assert not mp.active_children()
    assert not dist.is_initialized()


def test_the_watchdog_trips_a_step_only_before_the_driver_is_done_with_it():
    watchdog = Watchdog({})  # its thread is not started: the test makes its checks itself
    watchdog.expect("a step", 0.01)
    assert watchdog.done() is True
    time.sleep(0.02)  # a deadline read before done() must not trip the finished step
    assert watchdog.claim_overdue() is False and watchdog.cause is None
    watchdog.expect("a step", 0.01)
    assert watchdog.claim_overdue() is False  # not due yet
    time.sleep(0.02)
    assert watchdog.claim_overdue() is True
    assert watchdog.cause == ("a step did not finish within 0.01 s (see tp_timeout_s); a worker "
                              "is hung or far too slow (worker states ; T means stopped)")
    assert watchdog.done() is False  # the driver must treat the step as failed
    assert watchdog.claim("a worker exited") is False  # the first cause stays


def test_a_stopped_watchdog_trips_no_more():
    watchdog = Watchdog({})
    watchdog.expect("a step", 0.01)
    watchdog.stop()
    time.sleep(0.02)
    assert watchdog.claim_overdue() is False and watchdog.claim("a worker exited") is False
    assert watchdog.cause is None


def capture_on_rank(rank, size, port, results):
    """Three captures on one rank (runs in a spawned process): all succeed; rank 1 fails at
    the second size; rank 0 fails at the first. Every rank must stop at the same size."""
    join_group(rank, size, port, torch.device("cpu"), timeout_s=120)
    try:
        outcomes = []
        for failing in (None, (1, 8), (0, 16)):
            captured = []

            def capture_one(size, failing=failing, captured=captured):
                if failing == (rank, size):
                    raise RuntimeError(f"no graph of size {size} on this rank")
                captured.append(size)

            def agree(ok):
                return fewest_across_group(int(ok), torch.device("cpu")) == 1

            try:
                capture_all([1, 8, 16], capture_one, agree)
                error = None
            except RuntimeError as failure:
                error = str(failure)
            outcomes.append((captured, error))
        results.put((rank, outcomes))
    finally:
        leave_group()


def test_every_rank_stops_capturing_cuda_graphs_at_the_same_size():
    spawn, port = mp.get_context("spawn"), free_port()
    results = spawn.Queue()
    ranks = [spawn.Process(target=capture_on_rank, args=(rank, 2, port, results))
             for rank in range(2)]
    for process in ranks:
        process.start()
    by_rank = dict(results.get(timeout=120) for _ in ranks)
    for process in ranks:
        process.join()
    other = "capture failed on another tensor-parallel rank at batch size {}"
    assert by_rank == {
        0: [([16, 8, 1], None), ([16, 8], other.format(8)),
            ([], "no graph of size 16 on this rank")],
        1: [([16, 8, 1], None), ([16], "no graph of size 8 on this rank"),
            ([16], other.format(16))],
    }


class FailsToUnpickle:
    """Unpickles as ``{}[key]``: a KeyError whose message is the whole (long) key."""

    def __init__(self, key: str):
        self.key = key

    def __reduce__(self):
        return operator.getitem, ({}, self.key)


def test_a_long_worker_traceback_still_comes_back():
    """A report longer than the pipe's buffer would block its worker; its end comes back."""
    llm = LLM(str(tiny_checkpoint("qwen3")), device="cpu", dtype="float32",
              num_kvcache_blocks=64, tensor_parallel_size=2, tp_timeout_s=5)
    runner, pids = llm.engine.model_runner, worker_pids(llm)
    runner.conns[1].send_bytes(pickle.dumps(FailsToUnpickle("k" * 1_000_000)))
    with pytest.raises(RuntimeError) as failed:
        runner.run_inputs(one_prefill(runner.block_size), None)
    headline, *reported = str(failed.value).split("\n", 1)
    assert headline == ("tensor parallelism failed: tensor-parallel worker rank 1 exited "
                        "with code 1")
    reported = "".join(reported)
    assert reported.startswith("--- rank 1 reported ---\n")
    # the line "KeyError: 'kkk...k'" (1,000,012 characters), cut to its first 1,000
    assert reported.endswith("\nKeyError: '" + "k" * 989 + " [999012 more characters]")
    assert len(reported) <= len("--- rank 1 reported ---\n") + 16_000
    assert_gone(pids)


def test_hung_worker_fails_generation_after_the_timeout():
    llm = LLM(str(tiny_checkpoint("qwen3")), device="cpu", dtype="float32",
              num_kvcache_blocks=64, tensor_parallel_size=2, tp_timeout_s=2)
    pids = worker_pids(llm)
    os.kill(pids[0], signal.SIGSTOP)  # alive, but never answers again
    outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert {o.finish_reason for o in outputs} == {"error"}
    assert re.search(r"a step did not finish within 2 s \(see tp_timeout_s\); a worker is hung "
                     r".*rank 1: T", outputs[0].error), outputs[0].error
    assert_gone(pids)


def test_ctrl_c_stops_the_workers(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(f"""
        import signal

        from nanovllm import LLM, SamplingParams

        if __name__ == "__main__":
            # Ctrl-C raises here even if the tests run where SIGINT is ignored (a background
            # job of a shell without job control inherits that)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            llm = LLM({str(tiny_checkpoint("qwen3"))!r}, device="cpu", tensor_parallel_size=2,
                      num_kvcache_blocks=64, max_model_len=1024)
            pids = [p.pid for p in llm.engine.model_runner.processes.values()]
            params = SamplingParams(temperature=0.0, max_tokens=1000, ignore_eos=True)
            for i, _ in enumerate(llm.stream([[1, 2, 3]], params)):
                if i == 3:
                    print("workers", *pids, flush=True)
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's nanovllm
    driver = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = driver.stdout.readline()
        assert line.startswith("workers"), driver.communicate()
        pids = [int(pid) for pid in line.split()[1:]]
        os.killpg(driver.pid, signal.SIGINT)  # what a terminal does: the whole process group
        _, stderr = driver.communicate(timeout=60)
    finally:  # whatever failed, leave no driver or worker behind
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode != 0 and "KeyboardInterrupt" in stderr
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_a_hung_nccl_teardown_is_given_up_after_its_timeout(monkeypatch):
    """close() must return even when NCCL's abort never does (seen on H100s with graphs)."""
    import threading
    import time

    from nanovllm.engine import tp_supervisor

    never = threading.Event()
    monkeypatch.setattr(tp_supervisor.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(tp_supervisor.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(tp_supervisor, "abort_group", never.wait)  # blocks until released
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match="did not return within 0.3 s"):
        assert tp_supervisor.leave_group(timeout_s=0.3) is False
    assert 0.3 <= time.monotonic() - start < 2.0
    never.set()  # let the thread end
    monkeypatch.setattr(tp_supervisor, "abort_group", lambda: None)
    assert tp_supervisor.leave_group(timeout_s=0.3) is True


def test_sizes_the_model_cannot_split_are_refused():
    with pytest.raises(ValueError, match=r"tensor_parallel_size=3 is invalid for this model "
                                         r".*allowed sizes are \[1, 2, 4\]"):
        LLM(str(tiny_checkpoint("qwen3")), device="cpu", tensor_parallel_size=3)
    assert not mp.active_children()


@pytest.mark.gpu
@pytest.mark.parametrize("size", [2, 4])
def test_greedy_tokens_match_one_gpu_with_nccl_and_cuda_graphs(size):
    if torch.cuda.device_count() < size:
        pytest.skip(f"needs {size} CUDA GPUs")
    folder = str(tiny_checkpoint("qwen3"))
    settings = dict(device="cuda", dtype="float32", num_kvcache_blocks=64, max_num_seqs=4)
    with LLM(folder, **settings) as llm:
        expected = [o.token_ids for o in llm.generate(PROMPTS, GREEDY, use_tqdm=False)]
    with LLM(folder, tensor_parallel_size=size, **settings) as llm:
        assert llm.engine.model_runner.graphs is not None
        outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert [o.token_ids for o in outputs] == expected
    assert not mp.active_children()


def test_message_cost_script_measures_the_arrays_protocol():
    """scripts/tp_message_cost.py, which wrote source/_records/tp/message-cost.json."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "tp_message_cost.py"),
                             "arrays"], capture_output=True, text=True, timeout=120, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    report = json.loads(result.stdout)
    # 3 int32 numbers a token and 3 a sequence (cu_seqlens has one more), 69 block ids
    payload = 5 * 256 * 4 + 257 * 4 + 256 * 69 * 4
    assert report["protocol"] == "arrays" and payload <= report["message_bytes"] < payload + 2000
    assert set(report["ms"]) == {"driver: build arrays", "driver: pickle", "worker: unpickle"}
    wrong = subprocess.run([sys.executable, str(REPO / "scripts" / "tp_message_cost.py"), "x"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert wrong.returncode != 0 and "protocol must be 'arrays' or 'batch'" in wrong.stderr
