"""A scheduling trace: every step's batch and the block state after it, as JSON.

The book's simulators replay traces, and their JavaScript is tested against traces made here,
so a trace holds only plain, ordered data (no times, no ids of Python objects). Schema
``nanovllm.trace/1``::

    {"schema": "nanovllm.trace/1",
     "config": {"block_size", "num_kvcache_blocks", "max_num_seqs", "max_num_batched_tokens",
                "max_model_len", "enable_prefix_caching", "enable_chunked_prefill",
                "eos_token_id"},
     "steps": [{
        "step": 0, 1, ...,
        "added": [{"seq_id", "prompt_token_ids", "max_tokens", "ignore_eos", "stop_token_ids"}],
                  # requests added since the previous step, in the order they were added
        "batch": {"seq_ids", "num_new_tokens", "is_prefill", "do_sample", "preempted_seq_ids"},
        "sampled_token_ids": [...],     # one per do_sample, in batch order
        "finished": [{"seq_id", "finish_reason"}],
        "seqs": [{"seq_id", "status", "num_tokens", "num_computed_tokens", "num_cached_tokens",
                  "block_table"}],      # live sequences: running (admission order), then waiting
        "pool": {"free_block_ids",      # in reuse order, front first
                 "ref_counts",          # indexed by block id
                 "cached_block_ids",    # blocks the prefix cache can find, ascending
                 "num_cached_keys"}}]}

Block keys are left out (past 2**53, JavaScript cannot hold them exactly). Everything after
"sampled_token_ids" is the state after postprocess.
"""

from __future__ import annotations

import json

from nanovllm.engine.scheduler import ScheduledBatch, Scheduler
from nanovllm.engine.sequence import Sequence, SequenceStatus

SCHEMA = "nanovllm.trace/1"


class TraceRecorder:
    """Watches a Scheduler and records one entry per step.

    Add requests before ``schedule()``; call ``record_step(batch, sampled)`` after
    ``scheduler.postprocess(batch, sampled)``. The recorder only reads the scheduler.
    """

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler
        self.steps: list[dict] = []
        self._seen: set[int] = set()

    def record_step(self, batch: ScheduledBatch, sampled_token_ids) -> None:
        s, bm = self.scheduler, self.scheduler.block_manager
        live = [*s.running, *s.waiting]
        # New requests admitted this step are in the batch, the others still wait: both lists
        # keep arrival order, and admission is first come first served.
        added = []
        for seq in [*batch.seqs, *s.waiting]:
            if seq.seq_id not in self._seen:
                self._seen.add(seq.seq_id)
                added.append(seq)
        self.steps.append({
            "step": len(self.steps),
            "added": [_request(seq) for seq in added],
            "batch": {"seq_ids": [seq.seq_id for seq in batch.seqs],
                      "num_new_tokens": list(batch.num_new_tokens),
                      "is_prefill": list(batch.is_prefill),
                      "do_sample": list(batch.do_sample),
                      "preempted_seq_ids": list(batch.preempted_seq_ids)},
            "sampled_token_ids": [int(t) for t in sampled_token_ids],
            "finished": [{"seq_id": seq.seq_id, "finish_reason": seq.finish_reason}
                         for seq in batch.seqs if seq.status is SequenceStatus.FINISHED],
            "seqs": [{"seq_id": seq.seq_id, "status": seq.status.value,
                      "num_tokens": seq.num_tokens,
                      "num_computed_tokens": seq.num_computed_tokens,
                      "num_cached_tokens": seq.num_cached_tokens,
                      "block_table": list(seq.block_table)} for seq in live],
            "pool": {"free_block_ids": list(bm.free_block_ids),
                     "ref_counts": [block.ref_count for block in bm.blocks],
                     "cached_block_ids": sorted(bm.cached_blocks.values()),
                     "num_cached_keys": len(bm.cached_blocks)},
        })

    def to_dict(self) -> dict:
        c = self.scheduler.config
        config = {"block_size": c.block_size, "num_kvcache_blocks": c.num_kvcache_blocks,
                  "max_num_seqs": c.max_num_seqs,
                  "max_num_batched_tokens": c.max_num_batched_tokens,
                  "max_model_len": c.max_model_len,
                  "enable_prefix_caching": c.enable_prefix_caching,
                  "enable_chunked_prefill": c.enable_chunked_prefill,
                  "eos_token_id": self.scheduler.eos_token_id}
        return {"schema": SCHEMA, "config": config, "steps": self.steps}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _request(seq: Sequence) -> dict:
    p = seq.sampling_params
    return {"seq_id": seq.seq_id, "prompt_token_ids": seq.prompt_token_ids,
            "max_tokens": p.max_tokens, "ignore_eos": p.ignore_eos,
            "stop_token_ids": list(p.stop_token_ids)}
