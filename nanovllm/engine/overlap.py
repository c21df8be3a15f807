"""The overlapped engine: the host schedules and prepares step N+1 while the GPU computes step N.

In the plain engine (``llm_engine.py``) the GPU waits while the host does a step's
bookkeeping and prepares the next one. Here ``step()`` queues step N+1 behind step N before
it waits for N's tokens:

    batch = scheduler.schedule()   # step N+1, while the GPU still computes N
    launch(batch)                  # queued behind N; its decodes read N's tokens on the GPU
    resolve(N)                     # wait for N's tokens: stops, stop strings, the output
    advance(batch)                 # N+1's bookkeeping, its tokens still unknown

A sequence that sampled in a step holds ``PENDING`` as its last token until that step
resolves; the next step computes it all the same, reading the real id from the GPU. So:

* a request that ends on its token (end-of-sequence, a stop token, a stop string) is found
  one step late: it is already in the next step, whose row for it is thrown away;
* a request that reaches its length limit is known at once (the limit does not depend on
  the token): it leaves before it is scheduled again, and its last token and finish
  reason come with its step's output;
* the prefix cache never keys a block on a token that is not known (``DeferredPublishing``).

Greedy and seeded outputs are the plain engine's: token for token on a CPU, up to rounding
on a GPU (a step may hold the rows thrown away, so its matrix products have other shapes).
Aborts end the same requests with the same tokens. A step that fails when launched ends its
requests, as in the plain engine; one that fails on the device, found when its tokens are
read, also ends the requests of the step already queued behind it, which read its results.
A step's output comes one ``step()`` later than in the plain engine, and between calls the
sequences of the queued step end in ``PENDING``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nanovllm.config import Config
from nanovllm.engine.block_manager import BlockManager
from nanovllm.engine.llm_engine import LLMEngine, StepOutput
from nanovllm.engine.model_runner import ModelRunner, resolve_device
from nanovllm.engine.scheduler import ScheduledBatch, Scheduler
from nanovllm.engine.sequence import Sequence, SequenceStatus

PENDING = -1  # a sampled token still on the GPU; token ids are never negative


class DeferredPublishing(BlockManager):
    """A block that a pending token completes is keyed once the token is known."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deferred: list[tuple[Sequence, int]] = []  # (sequence, block index), this step
        self.published: list[tuple[int, int]] = []  # (block id, content) published this step

    def _publish(self, seq: Sequence, i: int) -> None:
        if seq.token_ids[(i + 1) * self.block_size - 1] == PENDING:  # only a last token is
            self.deferred.append((seq, i))
        else:
            self.published.append(self.publish(seq, i))

    def take_step_lists(self) -> tuple[list[tuple[Sequence, int]], list[tuple[int, int]]]:
        """What the step just scheduled deferred, and what it published."""
        lists = self.deferred, self.published
        self.deferred, self.published = [], []
        return lists

    def publish(self, seq: Sequence, i: int) -> tuple[int, int] | None:
        """Key block ``i`` of ``seq``; (block id, content), or None where the block before it
        lost its key (its step failed): a key must stand for the whole prefix."""
        if i > 0 and self.blocks[seq.block_table[i - 1]].content is None:
            return None
        super()._publish(seq, i)
        block = self.blocks[seq.block_table[i]]
        return block.block_id, block.content

    def withdraw(self, published: list[tuple[int, int] | None]) -> None:
        """These publications' K/V was never written: the cache stops finding them (unless
        the block holds another publication by now)."""
        for entry in published:
            if entry is not None and self.blocks[entry[0]].content == entry[1]:
                self._forget(self.blocks[entry[0]])


@dataclass
class Launched:
    """A step queued on the device, its tokens not yet read back."""

    batch: ScheduledBatch
    sampled: list[Sequence]  # the sequences it samples, in row order
    positions: list[int]  # where each one's token goes in its token_ids
    tokens: torch.Tensor | None  # the sampled ids on the device: the next step reads them
    host: torch.Tensor | None  # their copy in host memory, complete once ``ready`` is
    ready: torch.cuda.Event | None
    num_prompt_tokens: int
    deferred: list[tuple[Sequence, int]]  # blocks to publish once the step before resolves
    published: list  # (block id, content) keyed for K/V that this step writes

    def token_ids(self) -> list[int]:
        if self.ready is not None:
            self.ready.synchronize()
        return [] if self.host is None else self.host.tolist()


class OverlappedEngine(LLMEngine):
    overlaps = True

    def __init__(self, model: str = "", **config_fields):
        super().__init__(model, **config_fields)
        assert type(self.model_runner) is ModelRunner  # Config refuses tensor parallelism

    def new_scheduler(self, config) -> Scheduler:
        """Also forgets the step on the device: its requests belong to the old scheduler."""
        self.in_flight: Launched | None = None
        self.leaving: set[Sequence] = set()  # ended by their length, last token not read yet
        scheduler = super().new_scheduler(config)
        scheduler.block_manager = DeferredPublishing(
            config.num_kvcache_blocks, config.block_size, config.enable_prefix_caching)
        return scheduler

    @property
    def block_manager(self) -> DeferredPublishing:
        return self.scheduler.block_manager

    def start_trace(self):
        raise ValueError("traces record the plain engine's steps; make the engine with "
                         "overlap_steps=False to trace it")

    def is_finished(self) -> bool:
        return self.scheduler.is_finished() and self.in_flight is None

    def step(self) -> StepOutput:
        """Queue the next step and return the output of the one before it."""
        batch, previous = self.scheduler.schedule(), self.in_flight
        deferred, published = self.block_manager.take_step_lists()
        self.num_preemptions += len(batch.preempted_seq_ids)
        if not batch.seqs:
            if previous is None:
                raise RuntimeError("the scheduler found nothing to run although requests remain")
            self.in_flight = None
            return self.resolve(previous, None)
        try:
            launched = self.launch(batch, previous, deferred, published)
        except Exception as error:
            self.in_flight = None
            output = self.resolve(previous, None) if previous else empty_output()
            failed = self.fail_step(ScheduledBatch(
                seqs=[seq for seq in batch.seqs if not seq.is_finished]), error)
            output.finished += failed.finished
            return output
        self.in_flight = launched
        output = self.resolve(previous, launched) if previous else empty_output()
        self.advance(launched)
        return output

    def launch(self, batch: ScheduledBatch, previous: Launched | None,
               deferred: list[tuple[Sequence, int]], published: list[int]) -> Launched:
        """Queue the step; a decode of a pending token reads it from ``previous``'s output."""
        runner = self.model_runner
        inputs, sampling = runner.step_inputs(batch)
        fill = None
        rows = [(int(inputs.cu_seqlens_q[i + 1]) - 1, j) for i, j in enumerate(
            previous_rows(batch, previous)) if j is not None]
        if rows:
            index = torch.tensor(rows, dtype=torch.int64).T.contiguous()
            if runner.device.type == "cuda":
                index = index.pin_memory().to(runner.device, non_blocking=True)
            source = previous.tokens

            def fill(input_ids: torch.Tensor) -> None:
                input_ids[index[0]] = source[index[1]].to(input_ids.dtype)

        tokens = runner.sample(inputs, sampling, fill)
        host = ready = None
        if tokens is not None:
            tokens = tokens.clone()  # a CUDA graph's output is rewritten by its next replay
            host, ready = tokens, None
            if tokens.is_cuda:
                host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
                host.copy_(tokens, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
        sampled = [seq for seq, do in zip(batch.seqs, batch.do_sample, strict=True) if do]
        num_prompt_tokens = sum(n for n, prefill in zip(batch.num_new_tokens, batch.is_prefill,
                                                        strict=True) if prefill)
        return Launched(batch, sampled, [seq.num_tokens for seq in sampled], tokens, host, ready,
                        num_prompt_tokens, deferred, published)

    def advance(self, launched: Launched) -> None:
        """A launched step's bookkeeping: its tokens are computed, its samples pending. A
        request its length ends leaves the scheduler now, its blocks with it; it finishes
        when its last token is read."""
        limit = self.config.max_model_len
        for seq, n, sample in zip(launched.batch.seqs, launched.batch.num_new_tokens,
                                  launched.batch.do_sample, strict=True):
            if seq.is_finished:  # ended when the step before resolved: this row is thrown away
                continue
            seq.num_computed_tokens += n
            if sample:
                seq.append_token(PENDING)
                if (seq.num_completion_tokens >= seq.sampling_params.max_tokens
                        or seq.num_tokens >= limit):
                    self.scheduler.running.remove(seq)
                    self.block_manager.free(seq)
                    self.leaving.add(seq)

    def resolve(self, launched: Launched, following: Launched | None) -> StepOutput:
        """Read a step's tokens and finish what they end; then publish the blocks that
        ``following`` completes with them."""
        try:
            token_ids = launched.token_ids()
        except Exception as error:
            return self.fail_resolved(launched, following, error)
        sampled, finished = [], []
        for seq, pos, token in zip(launched.sampled, launched.positions, token_ids,
                                   strict=True):
            if seq.is_finished:  # aborted, failed, or ended by the step before
                continue
            seq.token_ids[pos] = seq.last_token_id = token
            sampled.append((seq, token))
            reason = self.scheduler._finish_reason(seq)
            if seq in self.leaving:  # a stop or EOS token still wins over length
                self.finish_leaving([seq], reason)
                finished.append(seq)
            elif reason is not None:
                self.scheduler.finish(seq, reason)
                finished.append(seq)
        self.find_stop_strings([seq for seq, _ in sampled], finished)
        if following is not None:
            for seq, i in following.deferred:
                if not seq.is_finished:
                    following.published.append(self.block_manager.publish(seq, i))
        return StepOutput(sampled=sampled, finished=finished,
                          num_prompt_tokens=launched.num_prompt_tokens,
                          num_generated_tokens=len(sampled))

    def fail_resolved(self, launched: Launched, following: Launched | None,
                      error: Exception) -> StepOutput:
        """A step that failed on the device: its requests end with the error, and so do those
        of the step queued behind it, which read what it wrote (in the plain engine nothing
        runs after a step before its tokens are read). The blocks keyed for what either
        would write leave the prefix cache."""
        for seq, n in zip(launched.batch.seqs, launched.batch.num_new_tokens, strict=True):
            if seq in self.scheduler.running:
                seq.num_computed_tokens -= n  # ``free`` then withdraws what it published
        ended = []
        for step in (launched, following):
            if step is not None:
                self.block_manager.withdraw(step.published)
                ended += [seq for seq in step.batch.seqs
                          if not seq.is_finished and seq not in ended]
        for seq in ended:
            drop_pending(seq)
        self.finish_leaving(ended, "error")
        return self.fail_step(ScheduledBatch(seqs=ended), error)

    def finish_leaving(self, seqs: list[Sequence], reason: str) -> None:
        """End those of ``seqs`` that their length took out of the scheduler already (the
        scheduler ends the others, and would not find these)."""
        for seq in seqs:
            if seq in self.leaving:
                self.leaving.discard(seq)
                seq.status, seq.finish_reason = SequenceStatus.FINISHED, reason

    def abort(self, seqs=None) -> list[Sequence]:
        """As in the plain engine; a request whose length ended it in the step still on the
        device is aborted too, its token thrown away, as if that step had not run."""
        if seqs is None:
            seqs = [*self.scheduler.running, *self.scheduler.waiting, *self.leaving]
        seqs = [seq for seq in seqs if not seq.is_finished]
        aborted = super().abort([seq for seq in seqs if seq not in self.leaving])
        aborted += [seq for seq in seqs if seq in self.leaving]
        self.finish_leaving(seqs, "abort")
        for seq in aborted:
            drop_pending(seq)
        self.block_manager.take_step_lists()  # a step interrupted between schedule and launch
        if self.scheduler.is_finished() and not self.leaving:
            self.in_flight = None  # nothing it computes is wanted any more
        return aborted


def previous_rows(batch: ScheduledBatch, previous: Launched | None) -> list[int | None]:
    """For each sequence of ``batch``: its row in ``previous``'s tokens if its input is
    pending there, else None."""
    if previous is None:
        return [None] * len(batch.seqs)
    row = {seq: j for j, seq in enumerate(previous.sampled)}
    return [row[seq] if seq.last_token_id == PENDING else None for seq in batch.seqs]


def drop_pending(seq: Sequence) -> None:
    """A request ending early keeps only the tokens it really has."""
    while seq.token_ids and seq.token_ids[-1] == PENDING:
        seq.token_ids.pop()
        seq.num_tokens -= 1
    seq.last_token_id = seq.token_ids[-1] if seq.token_ids else None
    seq.num_computed_tokens = min(seq.num_computed_tokens, seq.num_tokens)


def empty_output() -> StepOutput:
    return StepOutput(sampled=[], finished=[], num_prompt_tokens=0, num_generated_tokens=0)


def make_engine(model: str = "", **config_fields) -> LLMEngine:
    """The overlapped engine where ``overlap_steps`` asks for it, the plain one otherwise.

    ``"auto"`` (the default) overlaps on a GPU with one process, where it is faster
    (``source/_records/bench/README.md``); on a CPU the host's work is no gap to hide, and the
    plain engine's steps are the ones the book traces.
    """
    config = Config(model=model, **config_fields)  # a bad field is refused here, by name
    overlap = config.overlap_steps
    if overlap == "auto":
        overlap = (config.tensor_parallel_size == 1
                   and resolve_device(config.device).type == "cuda")
    engine = OverlappedEngine if overlap else LLMEngine
    return engine(model, **{**config_fields, "overlap_steps": overlap})
