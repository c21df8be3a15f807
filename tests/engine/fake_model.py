"""A stand-in for the data plane, so control-plane tests run without torch and still check KV.

``FakeModel`` keeps a KV cache whose slots hold the ``(token id, position)`` pair that real K/V
would be computed from. Each step it first stores the K/V of every scheduled token (the whole
batch, as the real runner must), then for each sequence reads back, through its block table,
every position its chunk attends to and asserts they hold exactly that sequence's tokens. A wrong
block table, a false prefix-cache hit or an overwritten shared block fails right here. The next
token is a hash of what was read: deterministic, and dependent on the whole prefix.
"""

from __future__ import annotations

from collections import Counter

from nanovllm.config import Config
from nanovllm.engine.block_manager import compute_block_key
from nanovllm.engine.scheduler import ScheduledBatch, Scheduler, is_decode
from nanovllm.engine.sequence import Sequence, SequenceStatus
from nanovllm.engine.trace import TraceRecorder
from nanovllm.sampling_params import SamplingParams

VOCAB = 40
EOS = 0


def next_token(token_ids: list[int]) -> int:
    return compute_block_key(token_ids, None) % VOCAB


def reference_completion(prompt: list[int], params: SamplingParams, max_model_len: int,
                         eos: int = EOS) -> tuple[list[int], str]:
    """What one request alone, on an ideal engine, generates and why it stops."""
    tokens = list(prompt)
    while True:
        token = next_token(tokens)
        tokens.append(token)
        if (token == eos and not params.ignore_eos) or token in params.stop_token_ids:
            return tokens[len(prompt):], "stop"
        if len(tokens) - len(prompt) >= params.max_tokens or len(tokens) >= max_model_len:
            return tokens[len(prompt):], "length"


class FakeModel:
    def __init__(self, num_blocks: int, block_size: int):
        self.block_size = block_size
        self.kv: list[list[tuple[int, int] | None]] = [[None] * block_size
                                                         for _ in range(num_blocks)]

    def slot(self, seq: Sequence, pos: int) -> tuple[int, int]:
        return seq.block_table[pos // self.block_size], pos % self.block_size

    def step(self, batch: ScheduledBatch) -> list[int]:
        for seq, n in zip(batch.seqs, batch.num_new_tokens, strict=True):
            assert len(seq.block_table) * self.block_size >= seq.num_computed_tokens + n
            for pos in range(seq.num_computed_tokens, seq.num_computed_tokens + n):
                block, offset = self.slot(seq, pos)
                self.kv[block][offset] = (seq.token_ids[pos], pos)
        sampled = []
        for seq, n, sample in zip(batch.seqs, batch.num_new_tokens, batch.do_sample, strict=True):
            end = seq.num_computed_tokens + n
            read = [self.kv[b][o] for b, o in (self.slot(seq, p) for p in range(end))]
            assert read == [(t, p) for p, t in enumerate(seq.token_ids[:end])], (
                f"{seq} read wrong K/V: {read}")
            if sample:
                sampled.append(next_token([t for t, _ in read]))
        return sampled


def run(scheduler: Scheduler, model: FakeModel, arrivals: dict[int, list[Sequence]],
        after_step=None, max_steps: int = 10_000) -> int:
    """Drive the engine loop until every request has arrived and finished; returns the steps.

    ``arrivals[k]`` are added just before step k. ``after_step(batch, sampled)`` runs after
    each postprocess (invariant checks, a trace recorder).
    """
    step, last_arrival = 0, max(arrivals, default=0)
    while step <= last_arrival or not scheduler.is_finished():
        for seq in arrivals.get(step, []):
            scheduler.add(seq)
        had_work = not scheduler.is_finished()
        batch = scheduler.schedule()
        assert len(batch) > 0 or not had_work, "no progress although requests are pending"
        sampled = model.step(batch)
        scheduler.postprocess(batch, sampled)
        if after_step is not None:
            after_step(batch, sampled)
        step += 1
        assert step < max_steps
    return step


class InvariantChecker:
    """The accounting invariants of the scheduler and block manager, checked after each step.

    Call it as ``after_step`` in ``run``. ``seqs`` are all the requests of the workload: their
    tokens tell which prefix every block key must stand for.
    """

    def __init__(self, scheduler: Scheduler, model: FakeModel, seqs: list[Sequence]):
        self.scheduler, self.model, self.seqs = scheduler, model, seqs
        self.chains: dict[int, list[int]] = {seq.seq_id: [] for seq in seqs}
        self.known: dict[int, tuple[int, tuple[int, ...]]] = {}  # key -> (block index, tokens)
        self.steps = 0
        self.preemptions = 0

    def _learn_keys(self) -> None:
        bs = self.scheduler.block_manager.block_size
        for seq in self.seqs:
            chain = self.chains[seq.seq_id]
            while (len(chain) + 1) * bs <= seq.num_tokens:
                j = len(chain)
                tokens = tuple(seq.token_ids[j * bs : (j + 1) * bs])
                chain.append(compute_block_key(tokens, chain[-1] if chain else None))
                self.known[chain[-1]] = (j, tokens)

    def __call__(self, batch: ScheduledBatch, sampled: list[int]) -> None:
        s, bm = self.scheduler, self.scheduler.block_manager
        bs, caching = bm.block_size, bm.enable_prefix_caching
        self.steps += 1
        self.preemptions += len(batch.preempted_seq_ids)
        self._learn_keys()
        assert all(n >= 1 for n in batch.num_new_tokens)
        assert batch.num_tokens <= s.config.max_num_batched_tokens
        assert len(s.running) <= s.config.max_num_seqs
        for seq in self.seqs:  # only running sequences hold blocks
            assert seq.block_table == [] or seq.status is SequenceStatus.RUNNING
        for seq in s.waiting:
            assert seq.status is SequenceStatus.WAITING and seq.num_computed_tokens == 0
        # At most one running sequence is still in prefill, and it is the newest.
        in_prefill = [seq for seq in s.running if not is_decode(seq)]
        assert in_prefill in ([], s.running[-1:])
        held = Counter()
        for seq in s.running:
            assert seq.status is SequenceStatus.RUNNING
            assert len(seq.block_table) == -(-seq.num_computed_tokens // bs)
            assert len(set(seq.block_table)) == len(seq.block_table)
            held.update(seq.block_table)
            for j in range(seq.num_computed_tokens // bs if caching else 0):
                assert bm.blocks[seq.block_table[j]].key == self.chains[seq.seq_id][j]
        # Ref counts match block tables; free + used = total; nothing is both free and used.
        assert [b.ref_count for b in bm.blocks] == [held[i] for i in range(bm.num_blocks)]
        free = list(bm.free_block_ids)
        assert sorted(free) == [b.block_id for b in bm.blocks if b.ref_count == 0]
        assert len(free) + len(held) == bm.num_blocks
        # Every key in the cache map points to a block holding exactly the tokens (and K/V) the
        # key stands for.
        assert caching or not bm.cached_blocks
        for key, block_id in bm.cached_blocks.items():
            block = bm.blocks[block_id]
            j, tokens = self.known[key]
            assert block.key == key and block.token_ids == tokens
            assert self.model.kv[block_id] == [(t, j * bs + i) for i, t in enumerate(tokens)]


def replay(trace: dict) -> dict:
    """Run a trace's requests through a fresh Scheduler, feeding back its sampled tokens.

    Returns the new trace. It equals the input exactly when the scheduler still behaves as it
    did when the trace was recorded; otherwise it differs, or a step's sampled tokens no longer
    fit its batch and ``postprocess`` raises ValueError.
    """
    c = dict(trace["config"])
    eos_token_id = c.pop("eos_token_id")
    scheduler = Scheduler(Config(**c), eos_token_id)
    recorder = TraceRecorder(scheduler)
    for step in trace["steps"]:
        for r in step["added"]:
            params = SamplingParams(max_tokens=r["max_tokens"], ignore_eos=r["ignore_eos"],
                                    stop_token_ids=r["stop_token_ids"])
            scheduler.add(Sequence(r["prompt_token_ids"], params, seq_id=r["seq_id"]))
        batch = scheduler.schedule()
        scheduler.postprocess(batch, step["sampled_token_ids"])
        recorder.record_step(batch, step["sampled_token_ids"])
    return recorder.to_dict()
