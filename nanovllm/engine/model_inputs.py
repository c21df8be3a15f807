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

This runs on the CPU before every step, and during decode the GPU waits for it, so it
is written for speed: the per-token arithmetic is done by numpy on whole arrays rather
than by Python loops, every index is int32, and all seven arrays travel to the GPU in
**one** copy from pinned memory (each copy has a fixed cost of several microseconds,
whatever its size) and are handed out as views of that one buffer. Two shortcuts keep
Python ints from being converted one by one: a decode-only batch takes each sequence's
``last_token_id`` instead of slicing token lists, and each block table is converted to
an array once and reused until it changes (``block_table_array``).
"""

from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

from nanovllm.layers.attention import AttentionMetadata

ALIGN = 16  # each array starts at a multiple of 16 int32s (64 bytes), as Triton likes


@dataclass
class ModelInputs:
    input_ids: torch.Tensor  # [tokens]
    positions: torch.Tensor  # [tokens]
    meta: AttentionMetadata
    sample_rows: torch.Tensor  # [sampled seqs] row of each sampled sequence's last token


class PinnedStaging:
    """Page-locked host buffers, pinned once and refilled every step, one per name.

    Only a copy from pinned memory runs without the CPU waiting for it, but pinning
    memory is slow (the driver locks the pages: far longer than the copy itself), so a
    runner pins its buffers once. A buffer may be refilled only once the copy that last
    read it is done; an event recorded behind that copy says so (in practice it is long
    done: every step ends by reading its sampled tokens back).
    """

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}
        self.copied: dict[str, torch.cuda.Event] = {}

    def to_device(self, name: str, array: np.ndarray, device: torch.device) -> torch.Tensor:
        """``array`` (any dtype) on ``device``, copied through buffer ``name``."""
        if name in self.copied:
            self.copied[name].synchronize()
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < array.nbytes:
            buffer = self.buffers[name] = torch.empty(2 * array.nbytes, dtype=torch.uint8,
                                                      pin_memory=True)
        staged = buffer[:array.nbytes]
        staged.numpy()[:] = np.ascontiguousarray(array).view(np.uint8).ravel()
        on_device = staged.to(device, non_blocking=True)
        self.copied[name] = torch.cuda.Event()
        self.copied[name].record()
        return on_device.view(torch.from_numpy(array[:0]).dtype).view(array.shape)


def copy_to(device: torch.device, array: np.ndarray, staging: PinnedStaging | None,
            name: str) -> torch.Tensor:
    """``array`` on ``device``: through ``staging`` on a GPU, as it is on a CPU."""
    if device.type == "cuda":
        if staging is None:  # a one-off copy: pin just this once
            return torch.from_numpy(array).pin_memory().to(device, non_blocking=True)
        return staging.to_device(name, array, device)
    return torch.from_numpy(array)


def to_device(arrays: dict[str, np.ndarray], device: torch.device,
              staging: PinnedStaging | None = None) -> dict[str, torch.Tensor]:
    """Copy several int32 arrays to ``device`` in one transfer; return views, one per array."""
    offsets, total = {}, 0
    for name, array in arrays.items():
        offsets[name] = total
        total += -(-array.size // ALIGN) * ALIGN
    host = np.zeros(max(total, 1), dtype=np.int32)
    for name, array in arrays.items():
        host[offsets[name]:offsets[name] + array.size] = array.ravel()
    buffer = copy_to(device, host, staging, "model inputs")
    return {name: buffer[offsets[name]:offsets[name] + array.size].view(array.shape)
            for name, array in arrays.items()}


def block_table_array(seq) -> np.ndarray:
    """``seq.block_table`` as an int32 array, converted again only when the table changed.

    Converting every table from Python ints every step would cost more than all the rest
    of a decode step's preparation (256 sequences hold tens of thousands of blocks), yet
    a table only gains a block every ``block_size`` tokens. The array is kept on the
    sequence with the list it was made from, and it is stale exactly when the table is a
    different list (admission and ``free`` assign a new one) or a longer one (``allocate``
    appends); the block manager never edits an entry in place.
    """
    table, cached = seq.block_table, seq.block_table_cache
    if cached is None or cached[0] is not table or len(cached[1]) != len(table):
        cached = seq.block_table_cache = (table, np.array(table, dtype=np.int32))
    return cached[1]


@dataclass
class InputArrays:
    """One step's inputs on the host (numpy; int64 but the block tables), before they travel
    to the device, or, pickled, to a tensor-parallel worker."""
    input_ids: np.ndarray  # [tokens]
    positions: np.ndarray  # [tokens]
    slot_mapping: np.ndarray  # [tokens]
    cu_seqlens_q: np.ndarray  # [seqs + 1]
    context_lens: np.ndarray  # [seqs]
    block_tables: np.ndarray  # [seqs, longest table] int32, padded with -1
    sample_rows: np.ndarray  # [sampled seqs]
    max_query_len: int

    @property
    def decode_only(self) -> bool:
        return self.max_query_len == 1


def model_input_arrays(batch, block_size: int, keep_block_tables: bool = True) -> InputArrays:
    """The step's inputs as host arrays. With ``keep_block_tables`` each block table is kept
    as an array on its sequence for the next step (``block_table_array``): right for the
    scheduler's own sequences, pointless for sequences seen once, like the warm-up's."""
    seqs, num_seqs = batch.seqs, len(batch.seqs)
    if not any(batch.is_prefill):
        # Decode only, most steps: each sequence brings one token, the one it sampled last, at
        # position num_computed_tokens. Nothing to slice or repeat; token t is sequence t's.
        counts = np.ones(num_seqs, dtype=np.int64)
        starts = np.fromiter((seq.num_computed_tokens for seq in seqs), np.int64, num_seqs)
        cu_seqlens_q = np.arange(num_seqs + 1)
        input_ids = np.fromiter((seq.last_token_id for seq in seqs), np.int64, num_seqs)
        seq_of_token, positions = np.arange(num_seqs), starts
    else:
        counts = np.array(batch.num_new_tokens, dtype=np.int64)
        starts = np.array([seq.num_computed_tokens for seq in seqs], dtype=np.int64)
        cu_seqlens_q = np.concatenate(([0], np.cumsum(counts)))
        num_tokens = int(cu_seqlens_q[-1])
        input_ids = np.fromiter(chain.from_iterable(
            seq.token_ids[start:start + n]
            for seq, start, n in zip(seqs, starts.tolist(), batch.num_new_tokens, strict=True)),
            dtype=np.int64, count=num_tokens)
        # Token t belongs to sequence seq_of_token[t]; its position counts on from that start.
        seq_of_token = np.repeat(np.arange(num_seqs), counts)
        positions = np.arange(num_tokens) - cu_seqlens_q[seq_of_token] + starts[seq_of_token]

    # Block tables, padded with -1 to the longest: fill the row-major "is a real entry" mask.
    lengths = np.fromiter((len(seq.block_table) for seq in seqs), np.int64, num_seqs)
    block_tables = np.full((num_seqs, max(int(lengths.max()), 1)), -1, dtype=np.int32)
    if keep_block_tables:  # sequences that come back every step: each table converted once
        entries = np.concatenate([block_table_array(seq) for seq in seqs])
    else:  # one pass over every list: cheaper than an array per table used only once
        entries = np.fromiter(chain.from_iterable(seq.block_table for seq in seqs), np.int64,
                              int(lengths.sum()))
    block_tables[np.arange(block_tables.shape[1]) < lengths[:, None]] = entries
    slot_mapping = (block_tables[seq_of_token, positions // block_size] * block_size
                    + positions % block_size)
    sample_rows = cu_seqlens_q[1:][np.array(batch.do_sample, dtype=bool)] - 1
    return InputArrays(input_ids=input_ids, positions=positions, slot_mapping=slot_mapping,
                       cu_seqlens_q=cu_seqlens_q, context_lens=starts + counts,
                       block_tables=block_tables, sample_rows=sample_rows,
                       max_query_len=int(counts.max()))


def to_model_inputs(arrays: InputArrays, device: torch.device,
                    staging: PinnedStaging | None = None) -> ModelInputs:
    """The host arrays on ``device``, in one copy, as the model reads them."""
    on_device = to_device({
        "input_ids": arrays.input_ids, "positions": arrays.positions,
        "slot_mapping": arrays.slot_mapping, "cu_seqlens_q": arrays.cu_seqlens_q,
        "context_lens": arrays.context_lens, "block_tables": arrays.block_tables,
        "sample_rows": arrays.sample_rows}, device, staging)
    meta = AttentionMetadata(
        slot_mapping=on_device["slot_mapping"], cu_seqlens_q=on_device["cu_seqlens_q"],
        context_lens=on_device["context_lens"], block_tables=on_device["block_tables"],
        max_query_len=arrays.max_query_len, decode_only=arrays.decode_only)
    return ModelInputs(input_ids=on_device["input_ids"], positions=on_device["positions"],
                       meta=meta, sample_rows=on_device["sample_rows"])


def prepare_model_inputs(batch, block_size: int, device: torch.device,
                         keep_block_tables: bool = True,
                         staging: PinnedStaging | None = None) -> ModelInputs:
    """The step's inputs on ``device`` (``model_input_arrays``, then ``to_model_inputs``);
    ``staging``: the runner's pinned buffers."""
    return to_model_inputs(model_input_arrays(batch, block_size, keep_block_tables), device,
                           staging)
