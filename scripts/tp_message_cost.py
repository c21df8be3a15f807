"""What one decode step costs the tensor-parallel control channel, on this CPU.

A decode step of 256 sequences, each with 1,100 tokens of context in 16-token blocks (69
blocks), is turned into the message the driver sends each worker, and back, and into the
worker's model inputs. Two protocols:

* ``arrays`` (the engine since commit 712e199): the driver builds the step's input arrays
  once (``FastInputs.prepare``) and pickles them; the worker unpickles them, that is all;
* ``batch`` (before it): the driver pickled the scheduler's batch of ``Sequence`` objects
  (their token lists left out, ``Sequence.__getstate__`` of those commits); the worker
  unpickled it and built its inputs without cached block tables. The figures of record
  came from a checkout of such a commit; with this one the token lists travel too.

Prints one JSON object: the message size and the mean milliseconds of each part.

    python scripts/tp_message_cost.py arrays
"""

import json
import pickle
import platform
import sys
import time

from nanovllm.bench.record import engine_commit
from nanovllm.engine.fast_inputs import FastInputs
from nanovllm.engine.scheduler import ScheduledBatch
from nanovllm.engine.sequence import Sequence

SEQS, CONTEXT, BLOCKS, REPEATS = 256, 1100, 69, 300


def decode_batch() -> ScheduledBatch:
    seqs = []
    for i in range(SEQS):
        seq = Sequence(list(range(CONTEXT)), seq_id=i)
        seq.num_computed_tokens = CONTEXT - 1
        seq.block_table = list(range(i * BLOCKS, (i + 1) * BLOCKS))
        seqs.append(seq)
    return ScheduledBatch(seqs, [1] * SEQS, [False] * SEQS, [True] * SEQS)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def mean_ms(function) -> float:
    start = time.perf_counter()
    for _ in range(REPEATS):
        function()
    return (time.perf_counter() - start) / REPEATS * 1e3


def main(protocol: str) -> dict:
    batch = decode_batch()
    if protocol == "arrays":
        inputs = FastInputs(16)
        arrays = inputs.prepare(batch)
        message = pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL)
        parts = {"driver: build arrays": mean_ms(lambda: inputs.prepare(batch)),
                 "driver: pickle": mean_ms(lambda: pickle.dumps(arrays, protocol=5)),
                 "worker: unpickle": mean_ms(lambda: pickle.loads(message))}
    elif protocol == "batch":
        message = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        copy = pickle.loads(message)
        parts = {"driver: pickle": mean_ms(lambda: pickle.dumps(batch, protocol=5)),
                 "worker: unpickle": mean_ms(lambda: pickle.loads(message)),
                 "worker: build inputs": mean_ms(
                     lambda: FastInputs(16).prepare(copy))}
    else:
        raise SystemExit(f"protocol must be 'arrays' or 'batch', not {protocol!r}")
    return {"protocol": protocol, "sequences": SEQS, "context_tokens": CONTEXT,
            "blocks_per_sequence": BLOCKS, "message_bytes": len(message),
            "ms": {name: round(ms, 4) for name, ms in parts.items()},
            "engine_commit": engine_commit(), "python": platform.python_version(),
            "cpu": cpu_model()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "arrays"), indent=1))
