"""Scoring a prompt: the log-probability of each of its tokens, given the tokens before it.

A request with ``SamplingParams(prompt_logprobs=True)`` gets, besides its completion,
``log p(token[i] | token[0..i-1])`` for every prompt position ``i >= 1``: the numbers a
perplexity is made of, ``exp(-mean)``. The engine computes them from the same forward pass as
everything else, chunk by chunk, with keys and values read back from the paged cache as any
prefill does, so they measure the engine itself: its kernels and its cache's number format.

The model's output row for position ``p`` predicts the token at ``p + 1``; in a chunk of the
prompt every row but one predicts a known prompt token (the last row of the prompt's last
chunk predicts the first completion token). Those rows go through the LM head, a slice at a
time (a vocabulary of 151,936 makes every row's logits 0.6 MB in float32).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ROWS_AT_ONCE = 512


def prompt_scorer(batch, cu_seqlens_q, model) -> Callable[[torch.Tensor], None] | None:
    """A function of the step's output rows that writes each scored sequence's
    ``prompt_logprobs``; None when no sequence of the batch asks for them in this step."""
    rows, targets, where = [], [], []
    for i, (seq, n) in enumerate(zip(batch.seqs, batch.num_new_tokens, strict=True)):
        if not seq.sampling_params.prompt_logprobs:
            continue
        start = seq.num_computed_tokens  # the chunk is positions start .. start + n - 1
        end = min(start + n, seq.num_prompt_tokens - 1)  # rows that predict a prompt token
        first_row = int(cu_seqlens_q[i])
        for position in range(start, end):
            rows.append(first_row + position - start)
            targets.append(seq.token_ids[position + 1])
            where.append((seq, position + 1))
    if not rows:
        return None

    def score(hidden: torch.Tensor) -> None:
        values = []
        for first in range(0, len(rows), ROWS_AT_ONCE):
            part = slice(first, first + ROWS_AT_ONCE)
            index = torch.tensor(rows[part], device=hidden.device)
            wanted = torch.tensor(targets[part], device=hidden.device)
            logits = model.compute_logits(hidden[index]).float()
            values += logits.log_softmax(dim=-1).gather(1, wanted[:, None]).squeeze(1).tolist()
        for (seq, position), value in zip(where, values, strict=True):
            seq.prompt_logprobs[position] = value  # a recompute after preemption rewrites it

    return score
