"""The step's inputs, fast: what ``model_runner.prepare`` builds, with numpy, in one copy.

On a GPU the host prepares every step while the GPU waits, so three things make it cheap:

* **Whole arrays, not loops**: numpy arithmetic on arrays of every token; a decode-only
  batch, most steps, takes each sequence's ``last_token_id`` instead of slicing lists.
* **Block tables converted once**: 256 sequences hold tens of thousands of blocks, yet a
  table gains one only every ``block_size`` tokens. A table's array is made again only
  when the table is another list (admission, preemption) or a longer one; the block
  manager never edits an entry in place.
* **One copy from pinned memory**: every array is packed into one page-locked buffer,
  pinned once, and travels in one copy (a copy costs microseconds, whatever its size).
"""

import weakref
from itertools import chain

import numpy as np
import torch

from nanovllm.layers.attention import StepInputs

ALIGN = 16  # each array starts at a multiple of 16 int32s (64 bytes), as Triton likes


class FastInputs:
    def __init__(self, block_size: int):
        self.block_size = block_size
        self.tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # seq -> (list, array)
        self.pinned: torch.Tensor | None = None  # the host buffer every step is copied from
        self.copied: torch.cuda.Event | None = None  # done when the last copy read it

    def table(self, seq) -> np.ndarray:
        """``seq.block_table`` as an int32 array, converted again only when it changed."""
        cached = self.tables.get(seq)
        if cached is None or cached[0] is not seq.block_table or len(cached[1]) != len(
                seq.block_table):
            cached = self.tables[seq] = (seq.block_table,
                                         np.array(seq.block_table, dtype=np.int32))
        return cached[1]

    def prepare(self, batch) -> StepInputs:
        seqs, num_seqs, bs = batch.seqs, len(batch.seqs), self.block_size
        decode_only = not any(batch.is_prefill)
        counts = (np.ones(num_seqs, dtype=np.int64) if decode_only
                  else np.array(batch.num_new_tokens, dtype=np.int64))
        starts = np.fromiter((seq.num_computed_tokens for seq in seqs), np.int64, num_seqs)
        if decode_only:  # one token per sequence: the one it sampled last, at position start
            input_ids = np.fromiter((seq.last_token_id for seq in seqs), np.int64, num_seqs)
            cu_seqlens_q, seq_of_token, positions = (np.arange(num_seqs + 1),
                                                     np.arange(num_seqs), starts)
        else:
            cu_seqlens_q = np.concatenate(([0], np.cumsum(counts)))
            input_ids = np.fromiter(chain.from_iterable(
                seq.token_ids[start:start + n] for seq, start, n in
                zip(seqs, starts.tolist(), batch.num_new_tokens, strict=True)), np.int64)
            seq_of_token = np.repeat(np.arange(num_seqs), counts)
            # token t belongs to sequence seq_of_token[t]; its position counts on from its start
            positions = (np.arange(len(input_ids)) - cu_seqlens_q[seq_of_token]
                         + starts[seq_of_token])
        lengths = np.fromiter((len(seq.block_table) for seq in seqs), np.int64, num_seqs)
        block_tables = np.full((num_seqs, max(int(lengths.max()), 1)), -1, dtype=np.int32)
        block_tables[np.arange(block_tables.shape[1]) < lengths[:, None]] = np.concatenate(
            [self.table(seq) for seq in seqs])
        slot_mapping = block_tables[seq_of_token, positions // bs] * bs + positions % bs
        sample_rows = cu_seqlens_q[1:][np.array(batch.do_sample, dtype=bool)] - 1
        return StepInputs(*(a.astype(np.int32) for a in (
            input_ids, positions, slot_mapping, cu_seqlens_q, starts + counts)),
            block_tables=block_tables, sample_rows=sample_rows.astype(np.int32),
            max_query_len=int(counts.max()))

    def to_device(self, inputs: StepInputs, device: torch.device) -> StepInputs:
        """``inputs`` on ``device``: packed into the pinned buffer, then one copy."""
        arrays = [inputs.input_ids, inputs.positions, inputs.slot_mapping, inputs.cu_seqlens_q,
                  inputs.context_lens, inputs.block_tables, inputs.sample_rows]
        offsets = np.cumsum([0] + [-(-a.size // ALIGN) * ALIGN for a in arrays])
        if self.copied is not None:
            self.copied.synchronize()  # the buffer may be refilled once the last copy is done
        if self.pinned is None or self.pinned.numel() < offsets[-1]:
            self.pinned = torch.empty(2 * int(offsets[-1]), dtype=torch.int32, pin_memory=True)
        host = self.pinned.numpy()
        for array, start in zip(arrays, offsets, strict=False):
            host[start:start + array.size] = array.ravel()
        buffer = self.pinned[:offsets[-1]].to(device, non_blocking=True)
        self.copied = torch.cuda.Event()
        self.copied.record()
        views = [buffer[start:start + a.size].view(a.shape)
                 for a, start in zip(arrays, offsets, strict=False)]
        return StepInputs(*views, max_query_len=inputs.max_query_len)
