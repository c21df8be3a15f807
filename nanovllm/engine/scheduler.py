"""The scheduler: every step, which sequences run and how many tokens each one computes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from nanovllm.config import Config
from nanovllm.engine.block_manager import BlockManager
from nanovllm.engine.sequence import Sequence, SequenceStatus


@dataclass
class ScheduledBatch:
    """One step of work: for each sequence, the next tokens to compute.

    ``seqs[i]`` computes its tokens ``[start, start + num_new_tokens[i])``, where ``start`` is
    its ``num_computed_tokens`` (advanced only by ``postprocess``). A prefill, a chunk of a long
    prefill, a decode and a recompute after preemption all have this one shape, so the runner
    needs one code path. The lists run in parallel.
    """

    seqs: list[Sequence] = field(default_factory=list)
    num_new_tokens: list[int] = field(default_factory=list)
    # False only for a decode: the chunk is the single token sampled last, all before it done.
    is_prefill: list[bool] = field(default_factory=list)
    # True when the chunk reaches the sequence's last token, so a next token is sampled.
    do_sample: list[bool] = field(default_factory=list)
    preempted_seq_ids: list[int] = field(default_factory=list)  # sent back to waiting, newest first

    def __len__(self) -> int:
        return len(self.seqs)

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)


def is_decode(seq: Sequence) -> bool:
    """True when the one token left to compute is the one the sequence sampled last."""
    return seq.num_tokens > seq.num_prompt_tokens and seq.num_computed_tokens == seq.num_tokens - 1


class Scheduler:
    """Continuous batching over a fixed pool of KV blocks.

    ``schedule()`` builds a step in three moves:

    1. Running sequences, oldest admission first, each taking the tokens it has left to
       compute (one for a decode) out of the step's token budget. This is "decode first,
       prefill chunks in the remaining budget" (as in vLLM) without a second pass: a prompt
       chunk stops short only where the budget runs out, so a sequence still in prefill is
       always the newest running one, behind every decode. A long prompt never stalls the
       requests that are already generating.
    2. When a running sequence needs a block and the pool is empty: preemption by recompute.
       The most recently admitted running sequence gives up all its blocks and goes back to
       the front of the waiting queue; later it is recomputed (prompt and output so far, much
       of it perhaps revived from the prefix cache). Repeat until the block fits; if the needy
       sequence is itself the newest, it goes. No sequence is ever evicted by a newer one, so
       the oldest always advances and the engine cannot livelock.
    3. Waiting sequences, first come first served, while ``max_num_seqs``, the token budget
       and the pool allow, but not in a step that had to preempt (re-admitting what was just
       evicted would thrash). Prefix-cache hits count as already computed. A long prompt is
       cut to the budget left (chunked prefill); with chunked prefill off it fits whole or
       waits. The head of the queue is never overtaken.

    ``postprocess()`` then accounts for the computed step and finishes sequences.
    """

    def __init__(self, config: Config, eos_token_id: int | None):
        if config.num_kvcache_blocks < 1:
            raise ValueError("num_kvcache_blocks=0 is invalid for a Scheduler: the model runner "
                             "must size the KV pool (and set it in the Config) first")
        self.config = config
        self.eos_token_id = eos_token_id
        self.block_manager = BlockManager(config.num_kvcache_blocks, config.block_size,
                                          config.enable_prefix_caching)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # admission order: oldest first, next victim last

    def add(self, seq: Sequence) -> None:
        """Queue a request, or raise ValueError, changing nothing, if it could never run."""
        n, max_len, bs = seq.num_tokens, self.config.max_model_len, self.config.block_size
        if n == 0:
            raise ValueError("the prompt is empty; it needs at least one token")
        if min(seq.token_ids) < 0 or max(seq.token_ids) >= 2**31:  # the model inputs are int32
            raise ValueError("token ids must be ints in [0, 2**31)")
        if n >= max_len:
            raise ValueError(f"the prompt has {n} tokens; it must be shorter than "
                             f"max_model_len={max_len} to leave room for output")
        # K/V is stored for every token except the last one generated.
        blocks = -(-(min(n + seq.sampling_params.max_tokens, max_len) - 1) // bs)
        if blocks > self.block_manager.num_blocks:
            raise ValueError(f"prompt plus max_tokens needs up to {blocks} KV blocks, but the "
                             f"pool has {self.block_manager.num_blocks} blocks of {bs} tokens; "
                             f"lower max_tokens or give the KV cache more memory")
        self.waiting.append(seq)

    def is_finished(self) -> bool:
        return not self.waiting and not self.running

    def schedule(self) -> ScheduledBatch:
        """Choose this step's work and allocate its blocks (see the class docstring)."""
        batch, budget = ScheduledBatch(), self.config.max_num_batched_tokens
        i = 0  # 1. running sequences, oldest first (2. preemption happens in _make_room)
        while i < len(self.running):
            seq = self.running[i]
            n = min(seq.num_tokens - seq.num_computed_tokens, budget)
            if n > 0 and self._make_room(seq, n, batch):
                self._add_to_batch(batch, seq, n)
                budget -= n
            i += 1
        # region admission
        bm = self.block_manager  # 3. waiting sequences, first come first served
        while (self.waiting and budget > 0 and not batch.preempted_seq_ids
               and len(self.running) < self.config.max_num_seqs):
            seq = self.waiting[0]
            hits = bm.match_prefix(seq)
            todo = seq.num_tokens - len(hits) * bm.block_size
            n = min(todo, budget)
            if n < todo and not self.config.enable_chunked_prefill:
                break
            if bm.num_blocks_needed(seq, n, hits) > bm.num_free_blocks:
                break
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            self._add_to_batch(batch, seq, n, hits)
            budget -= n
        # endregion admission
        return batch

    def _make_room(self, seq: Sequence, n: int, batch: ScheduledBatch) -> bool:
        """Preempt the newest running sequences until ``seq``'s next ``n`` tokens fit.
        False if ``seq`` itself had to be preempted."""
        bm = self.block_manager
        while bm.num_blocks_needed(seq, n) > bm.num_free_blocks:
            victim = self.running.pop()
            bm.free(victim)
            victim.status = SequenceStatus.WAITING
            victim.num_computed_tokens = victim.num_cached_tokens = 0
            self.waiting.appendleft(victim)
            batch.preempted_seq_ids.append(victim.seq_id)
            if victim is seq:
                return False
        return True

    def _add_to_batch(self, batch: ScheduledBatch, seq: Sequence, n: int,
                      hits: tuple[int, ...] = ()) -> None:
        self.block_manager.allocate(seq, n, hits)
        batch.seqs.append(seq)
        batch.num_new_tokens.append(n)
        batch.is_prefill.append(not is_decode(seq))
        batch.do_sample.append(seq.num_computed_tokens + n == seq.num_tokens)

    def postprocess(self, batch: ScheduledBatch, sampled_token_ids) -> list[Sequence]:
        """Account for a computed step; return the sequences that finished in it.

        ``sampled_token_ids`` holds one token per sequence whose ``do_sample`` is True, in
        batch order. A sequence finishes on EOS (unless ``ignore_eos``) or a stop token
        (reason "stop"), or at ``max_tokens`` or ``max_model_len`` (reason "length"); its
        blocks go back to the pool at once.
        """
        if len(sampled_token_ids) != sum(batch.do_sample):
            raise ValueError(f"sampled_token_ids has {len(sampled_token_ids)} ids; the batch "
                             f"samples {sum(batch.do_sample)} (one per do_sample=True)")
        tokens, finished = iter(sampled_token_ids), []
        for seq, n, sample in zip(batch.seqs, batch.num_new_tokens, batch.do_sample,
                                  strict=True):
            seq.num_computed_tokens += n
            if not sample:
                continue
            seq.append_token(int(next(tokens)))
            reason = self._finish_reason(seq)
            if reason is not None:
                self.finish(seq, reason)
                finished.append(seq)
        return finished

    def _finish_reason(self, seq: Sequence) -> str | None:
        params, token = seq.sampling_params, seq.last_token_id
        if token in params.stop_token_ids:
            seq.stop_reason = token
            return "stop"
        if token == self.eos_token_id and not params.ignore_eos:
            return "stop"
        if (seq.num_completion_tokens >= params.max_tokens
                or seq.num_tokens >= self.config.max_model_len):
            return "length"
        return None

    def finish(self, seq: Sequence, reason: str) -> None:
        """End ``seq`` now, from whichever queue holds it; its blocks go back to the pool.

        Besides the stop conditions above, the engine ends requests here when a stop string
        appears in their text ("stop"), when they are aborted ("abort"), and when a step that
        computed them failed ("error"): then their last step's tokens were never computed,
        and ``free`` also withdraws the blocks it published for them.
        """
        if seq.status is SequenceStatus.RUNNING:
            self.block_manager.free(seq)
            self.running.remove(seq)
        elif seq.status is SequenceStatus.WAITING:
            self.waiting.remove(seq)
        seq.status, seq.finish_reason = SequenceStatus.FINISHED, reason
