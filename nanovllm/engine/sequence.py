"""A request as the engine sees it: its tokens, how many are computed, where their K/V lives."""

from __future__ import annotations

import itertools
from enum import Enum

from nanovllm.sampling_params import SamplingParams


class SequenceStatus(Enum):
    """Where a request is in its life: waiting -> running -> finished, and from running back
    to waiting when it is preempted. An abort ends it from either queue, a failed step the
    running ones it was computing."""

    WAITING = "waiting"  # queued: holds no KV blocks (new, or preempted)
    RUNNING = "running"  # admitted: holds blocks, gets tokens computed every step it is scheduled
    FINISHED = "finished"  # over: its blocks are given back, ``finish_reason`` says why


class Sequence:
    """One request: prompt plus generated tokens, and the state the scheduler moves around.

    The whole engine works in one currency: *computed tokens*. ``num_computed_tokens`` counts
    the tokens (from the start) whose K/V is already in the cache; a step computes the next
    ``n`` of them. A prompt's prefill, a chunk of a long prompt, one decode step and the
    recompute after a preemption are all "compute the next n tokens".

    ``block_table[i]`` is the KV block holding tokens ``[i * block_size, (i + 1) * block_size)``.
    ``num_cached_tokens`` is how many of those tokens the prefix cache supplied when the
    sequence was last admitted (work saved, not done).

    ``num_tokens`` and ``last_token_id`` are plain attributes, not derived from ``token_ids``:
    the scheduler and the model inputs read them for every sequence every step.
    """

    _next_id = itertools.count()

    def __init__(self, token_ids: list[int], sampling_params: SamplingParams | None = None,
                 seq_id: int | None = None):
        # Ids come from a process-wide counter unless given; pass them for reproducible traces.
        self.seq_id = next(Sequence._next_id) if seq_id is None else seq_id
        self.token_ids = list(token_ids)
        self.num_tokens = len(self.token_ids)
        self.num_prompt_tokens = self.num_tokens
        self.last_token_id = self.token_ids[-1] if self.token_ids else None
        self.sampling_params = sampling_params if sampling_params is not None else SamplingParams()
        self.status = SequenceStatus.WAITING
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0
        # log p(prompt token i | tokens before it), filled in as the prompt is computed, when
        # asked for (engine/scoring.py); position 0 has none
        self.prompt_logprobs: list[float | None] | None = (
            [None] * self.num_tokens if self.sampling_params.prompt_logprobs else None)
        self.block_table: list[int] = []
        self.finish_reason: str | None = None  # "stop", "length", "abort" or "error" once over
        self.stop_reason: int | str | None = None  # the stop token id or stop string that ended it
        self.error: str | None = None  # what went wrong, when finish_reason is "error"
        self.detokenizer = None  # its text as it grows, when the engine is asked to decode it

    @property
    def num_completion_tokens(self) -> int:
        return self.num_tokens - self.num_prompt_tokens

    @property
    def prompt_token_ids(self) -> list[int]:
        return self.token_ids[: self.num_prompt_tokens]

    @property
    def completion_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_blocks(self) -> int:
        """Blocks the sequence holds now (the width of its row in a block-table tensor)."""
        return len(self.block_table)

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def append_token(self, token_id: int) -> None:
        self.token_ids.append(token_id)
        self.num_tokens += 1
        self.last_token_id = token_id

    def __repr__(self) -> str:
        return (f"Sequence(id={self.seq_id}, {self.status.value}, tokens={self.num_tokens}, "
                f"computed={self.num_computed_tokens}, blocks={self.block_table})")
