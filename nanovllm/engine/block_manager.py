"""Paged KV-cache bookkeeping: a fixed pool of blocks, ref counts, and a prefix cache.

The KV cache is cut into blocks of ``block_size`` token slots. Each sequence has a block table:
entry i names the block that holds the K/V of its tokens ``[i * block_size, (i + 1) *
block_size)``. Blocks need not be adjacent, so free memory never fragments (only a sequence's
last block can be part empty), and one block may sit in several tables at once: that is how
requests with a common prompt prefix share its K/V.
This module only does the accounting; the model runner owns the memory.
"""

from __future__ import annotations

import itertools
import struct
from collections import OrderedDict
from dataclasses import dataclass

import xxhash

from nanovllm.engine.sequence import Sequence


def compute_block_key(token_ids: tuple[int, ...] | list[int], prev_key: int | None) -> int:
    """The prefix-cache key of a full block: its tokens hashed together with the previous key.

    Chaining makes a key stand for the whole prefix up to the end of the block, so the same
    tokens after a different beginning get a different key (their K/V differs too).

    Exact byte layout, for reimplementations (the book's JavaScript simulator): xxh64, seed 0,
    over ``prev_key`` as 8 bytes little-endian unsigned (omitted for a sequence's first block,
    where ``prev_key`` is None) followed by every token id as 4 bytes little-endian unsigned.
    The key is the unsigned 64-bit digest, above 2**53 in general: use BigInt in JavaScript.
    """
    head = b"" if prev_key is None else prev_key.to_bytes(8, "little")
    return xxhash.xxh64_intdigest(head + struct.pack(f"<{len(token_ids)}I", *token_ids))


@dataclass
class Block:
    """One block of the pool, as the accountant sees it (the K/V itself lives on the device).

    A key is only a 64-bit hash, and a client who crafts prompts can make two prefixes collide.
    So a cached block also carries what its key stands for, exactly: its own tokens, and which
    content came before them (``parent``). ``content`` names the block's K/V, its tokens after
    its whole prefix; two blocks share one only when they hold the same prefix exactly, and a
    number is never given to any other prefix, so checking the parent checks the whole chain.
    """

    block_id: int
    ref_count: int = 0  # how many block tables hold this block; 0 means it is free
    key: int | None = None  # set when the block is full and prefix caching is on
    token_ids: tuple[int, ...] = ()  # the tokens behind ``key``
    content: int | None = None  # names the exact prefix this block ends
    parent: int | None = None  # ``content`` of the block before it; None for a first block


class BlockManager:
    """Hands out KV blocks to sequences and finds blocks whose K/V can be reused.

    Free list: blocks with ref count 0, in the order they will be reused (front first).
    Prefix cache: ``cached_blocks`` maps the key of a full block to the block that holds it.
    A block keeps its key after it is freed, so until the free list hands it out again a new
    request with the same prefix can *revive* it instead of recomputing it. Reuse is what
    finally evicts a key.

    ``key_function`` is ``compute_block_key``; tests pass one that collides on purpose.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True,
                 key_function=compute_block_key):
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.key_function = key_function
        self.blocks = [Block(i) for i in range(num_blocks)]
        # An OrderedDict is a free list with O(1) pop-front, push-back and removal from the
        # middle (a revived block leaves the list wherever it is).
        self.free_block_ids: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.cached_blocks: dict[int, int] = {}  # key -> block id
        self.next_content = itertools.count()

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_block_ids)

    def match_prefix(self, seq: Sequence) -> tuple[int, ...]:
        """Ids of cached blocks that already hold the first tokens of ``seq``, in order.

        Only full blocks within the first ``num_tokens - 1`` tokens count: the last token must
        be computed to sample from, and it must land in a block of the sequence's own, never in
        one that others share. A key match is confirmed by the block's tokens and its parent,
        so a hash collision costs a miss, never wrong K/V.
        """
        if not self.enable_prefix_caching or seq.sampling_params.prompt_logprobs:
            return ()  # a scored prompt is computed whole: every token needs its output row
        bs, hits, key, parent = self.block_size, [], None, None
        for start in range(0, (seq.num_tokens - 1) // bs * bs, bs):
            tokens = tuple(seq.token_ids[start : start + bs])
            key = self.key_function(tokens, key)
            block = self._cached_copy(key, tokens, parent)
            if block is None:
                break
            hits.append(block.block_id)
            parent = block.content
        return tuple(hits)

    def _cached_copy(self, key: int, tokens: tuple[int, ...], parent: int | None) -> Block | None:
        """The block the cache finds under ``key``, if it holds exactly ``tokens`` after the
        content ``parent``; None for no block or a colliding one."""
        block_id = self.cached_blocks.get(key)
        if block_id is None:
            return None
        block = self.blocks[block_id]
        return block if block.token_ids == tokens and block.parent == parent else None

    def num_blocks_needed(self, seq: Sequence, num_new_tokens: int,
                          hits: tuple[int, ...] = ()) -> int:
        """How many free blocks ``allocate(seq, num_new_tokens, hits)`` would use up.

        New blocks to hold the chunk, plus every hit that is currently free: reviving a block
        takes it off the free list just like a fresh allocation does.
        """
        # ``hits`` only come with a waiting sequence, which has no table and no computed tokens.
        end = seq.num_computed_tokens + len(hits) * self.block_size + num_new_tokens
        new_blocks = -(-end // self.block_size) - len(seq.block_table) - len(hits)
        if not hits:  # every running sequence, every step: skip the (empty) sum
            return new_blocks
        return new_blocks + sum(self.blocks[b].ref_count == 0 for b in hits)

    def allocate(self, seq: Sequence, num_new_tokens: int, hits: tuple[int, ...] = ()) -> None:
        """Grow ``seq``'s block table to hold its next ``num_new_tokens`` tokens.

        For a waiting sequence (empty table) this is admission: the cached ``hits`` from
        ``match_prefix`` start the table and count as computed, which ``num_cached_tokens``
        reports. The caller checks ``num_blocks_needed`` first.

        Every block this chunk fills is published in the prefix cache now, at schedule time,
        so a request admitted later in the same step already shares it. That is safe because
        the runner stores the K/V of the whole step before any attention reads the cache; if
        the step never completes, ``free`` takes the publication back.
        """
        bs = self.block_size
        if not seq.block_table:
            for block_id in hits:
                self._revive(block_id)
            seq.block_table = list(hits)
            seq.num_computed_tokens = seq.num_cached_tokens = len(hits) * bs
        start = seq.num_computed_tokens
        end = start + num_new_tokens
        while len(seq.block_table) * bs < end:
            seq.block_table.append(self._take_free_block())
        if self.enable_prefix_caching:
            for i in range(start // bs, end // bs):
                self._publish(seq, i)

    def free(self, seq: Sequence) -> None:
        """Give back ``seq``'s blocks; those no other sequence holds go to the free list.

        Freed blocks keep their key, so they stay revivable until reused. Blocks are released
        last first, and a block the cache can find joins the back of the list, so the start of
        a prompt, the part most worth sharing, is evicted last. A block the cache cannot find
        has nothing worth keeping and joins the front, to be reused first.

        A block that reaches past ``num_computed_tokens`` was published for a step that never
        completed (it failed, or the request was aborted during it): its K/V may never have
        been written, so it leaves the cache before anyone else can find it.
        """
        bs = self.block_size
        for i in reversed(range(len(seq.block_table))):
            block = self.blocks[seq.block_table[i]]
            if (i + 1) * bs > seq.num_computed_tokens and self._is_cached(block):
                self._forget(block)
            block.ref_count -= 1
            if block.ref_count == 0:
                self.free_block_ids[block.block_id] = None
                if not self._is_cached(block):
                    self.free_block_ids.move_to_end(block.block_id, last=False)
        seq.block_table = []

    def _is_cached(self, block: Block) -> bool:
        return block.key is not None and self.cached_blocks.get(block.key) == block.block_id

    def _revive(self, block_id: int) -> None:
        """One more table holds a cached block; if it was free, it leaves the free list."""
        block = self.blocks[block_id]
        if block.ref_count == 0:
            del self.free_block_ids[block_id]
        block.ref_count += 1

    def _take_free_block(self) -> int:
        """Reuse the block at the front of the free list; its old content is forgotten."""
        block_id, _ = self.free_block_ids.popitem(last=False)
        block = self.blocks[block_id]
        self._forget(block)
        block.ref_count = 1
        return block_id

    def _forget(self, block: Block) -> None:
        """The block's content is gone (or was never written): the cache stops finding it."""
        if self._is_cached(block):
            del self.cached_blocks[block.key]
        block.key, block.token_ids, block.content, block.parent = None, (), None, None

    def _publish(self, seq: Sequence, i: int) -> None:
        """Key block ``i`` of ``seq`` (now full) and make the prefix cache point to it.

        If the key already points to another block, this newer copy wins: it is held by a
        running sequence, while the older one may be free and about to be reused. The older
        copy keeps serving whoever holds it; it just cannot be found any more. When the older
        block holds exactly the same prefix, the newer one takes over its ``content``, so the
        blocks published after either of them still count as its children.
        """
        bs = self.block_size
        block = self.blocks[seq.block_table[i]]
        before = self.blocks[seq.block_table[i - 1]] if i > 0 else None
        block.token_ids = tuple(seq.token_ids[i * bs : (i + 1) * bs])
        block.parent = before.content if before else None
        block.key = self.key_function(block.token_ids, before.key if before else None)
        same = self._cached_copy(block.key, block.token_ids, block.parent)
        block.content = same.content if same else next(self.next_content)
        self.cached_blocks[block.key] = block.block_id
