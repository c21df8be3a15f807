"""Turn the scheduler's decision for one step into the flat tensors the model reads.

The scheduler says, for each sequence, "compute tokens [start, start + n)", where
``start = seq.num_computed_tokens``. That one rule covers a whole prompt (start = 0),
a prompt whose first blocks came from the prefix cache (start = cached tokens), a
later chunk of a chunked prefill, a decode step (n = 1), and recomputation after
preemption. For each sequence we emit its n token ids and positions, the cache slot of
each (``block_table[p // block_size] * block_size + p % block_size``), its block table,
and its context length ``start + n``. Sequences are packed end to end with no padding.

Only the last row of a sequence whose chunk reaches the end of its tokens is sampled
(``do_sample``); a middle chunk of a long prompt produces no token.
"""

from dataclasses import dataclass

import torch

from nanovllm.layers.attention import AttentionMetadata


@dataclass
class ModelInputs:
    input_ids: torch.Tensor  # [tokens]
    positions: torch.Tensor  # [tokens]
    meta: AttentionMetadata
    sample_rows: torch.Tensor  # [sampled seqs] row of each sampled sequence's last token


def prepare_model_inputs(batch, block_size: int, device: torch.device) -> ModelInputs:
    input_ids: list[int] = []
    positions: list[int] = []
    slot_mapping: list[int] = []
    cu_seqlens_q = [0]
    context_lens: list[int] = []
    sample_rows: list[int] = []
    for seq, n, do_sample in zip(batch.seqs, batch.num_new_tokens, batch.do_sample,
                                 strict=True):
        start, end = seq.num_computed_tokens, seq.num_computed_tokens + n
        # A worker's copy of a decoding sequence carries only its last token (Sequence.__getstate__).
        input_ids += seq.token_ids[start:end] if seq.token_ids is not None else [seq.last_token_id]
        positions += range(start, end)
        table = seq.block_table
        slot_mapping += [table[p // block_size] * block_size + p % block_size
                         for p in range(start, end)]
        cu_seqlens_q.append(cu_seqlens_q[-1] + n)
        context_lens.append(end)
        if do_sample:
            sample_rows.append(cu_seqlens_q[-1] - 1)
    width = max(len(seq.block_table) for seq in batch.seqs)
    block_tables = [seq.block_table + [-1] * (width - len(seq.block_table)) for seq in batch.seqs]

    def tensor(values, dtype):
        return torch.tensor(values, dtype=dtype, pin_memory=device.type == "cuda").to(
            device, non_blocking=True)

    max_query_len = max(batch.num_new_tokens)
    meta = AttentionMetadata(
        slot_mapping=tensor(slot_mapping, torch.int64),
        cu_seqlens_q=tensor(cu_seqlens_q, torch.int32),
        context_lens=tensor(context_lens, torch.int32),
        block_tables=tensor(block_tables, torch.int32),
        max_query_len=max_query_len,
        decode_only=max_query_len == 1)
    return ModelInputs(input_ids=tensor(input_ids, torch.int64),
                       positions=tensor(positions, torch.int64), meta=meta,
                       sample_rows=tensor(sample_rows, torch.int64))
