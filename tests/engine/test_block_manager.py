"""BlockManager: the free list, ref counts and the prefix cache, one behaviour at a time."""

from __future__ import annotations

import xxhash

from nanovllm.engine.block_manager import BlockManager, compute_block_key
from nanovllm.engine.sequence import Sequence


def compute(bm: BlockManager, seq: Sequence, n: int, hits=()) -> None:
    """One step for one sequence: allocate its next n tokens, then count them as computed."""
    bm.allocate(seq, n, hits)
    seq.num_computed_tokens += n


def keys_of(tokens: list[int], bs: int) -> list[int]:
    """The chained keys of every full block of ``tokens``."""
    keys: list[int] = []
    for start in range(0, len(tokens) // bs * bs, bs):
        keys.append(compute_block_key(tokens[start : start + bs], keys[-1] if keys else None))
    return keys


def test_block_key_byte_layout_is_exact():
    # The layout a reimplementation must match: prev key as 8 bytes LE, then tokens as 4 bytes LE.
    first = xxhash.xxh64(b"".join(t.to_bytes(4, "little") for t in [1, 2, 3, 4])).intdigest()
    assert compute_block_key([1, 2, 3, 4], None) == first == 2877822695146591398
    second = xxhash.xxh64(first.to_bytes(8, "little") + b"".join(
        t.to_bytes(4, "little") for t in [5, 6, 7, 8]), seed=0).intdigest()
    assert compute_block_key((5, 6, 7, 8), first) == second == 17010504966165004578
    assert compute_block_key([2**32 - 1], 0) == 16245199199750232163


def test_block_key_stands_for_the_whole_prefix():
    assert compute_block_key([5, 6], None) != compute_block_key([5, 6], compute_block_key([1, 2],
                                                                                          None))


def test_allocate_takes_blocks_from_the_front_and_publishes_the_full_ones():
    bm = BlockManager(num_blocks=8, block_size=4)
    seq = Sequence(list(range(10)), seq_id=0)
    assert bm.match_prefix(seq) == () and bm.num_blocks_needed(seq, 10) == 3
    compute(bm, seq, 10)
    assert seq.block_table == [0, 1, 2] and seq.num_cached_tokens == 0
    assert [b.ref_count for b in bm.blocks] == [1, 1, 1, 0, 0, 0, 0, 0]
    assert list(bm.free_block_ids) == [3, 4, 5, 6, 7]
    k0, k1 = keys_of(seq.token_ids, 4)
    assert bm.cached_blocks == {k0: 0, k1: 1}  # the partial block 2 has no key
    assert (bm.blocks[1].key, bm.blocks[1].token_ids, bm.blocks[2].key) == (k1, (4, 5, 6, 7), None)


def test_a_request_with_the_same_prefix_shares_the_cached_blocks():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = Sequence(list(range(10)), seq_id=0)
    compute(bm, a, 10)
    b = Sequence(list(range(8)) + [20, 21, 22], seq_id=1)
    hits = bm.match_prefix(b)
    assert hits == (0, 1) and bm.num_blocks_needed(b, 3, hits) == 1
    bm.allocate(b, 3, hits)
    assert b.block_table == [0, 1, 3]
    assert b.num_cached_tokens == b.num_computed_tokens == 8  # only tokens 8..10 are computed
    assert [blk.ref_count for blk in bm.blocks[:4]] == [2, 2, 1, 1]


def test_hits_stop_at_the_first_block_that_differs():
    bm = BlockManager(num_blocks=8, block_size=4)
    compute(bm, Sequence([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], seq_id=0), 12)
    # Block 1 differs; block 2 has the same tokens but follows a different prefix.
    b = Sequence([1, 2, 3, 4, 0, 6, 7, 8, 9, 10, 11, 12, 13], seq_id=1)
    assert bm.match_prefix(b) == (0,)


def test_a_hit_leaves_at_least_one_token_to_compute_in_a_block_of_its_own():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = Sequence(list(range(8)), seq_id=0)
    compute(bm, a, 8)
    k0, k1 = keys_of(a.token_ids, 4)
    b = Sequence(list(range(8)), seq_id=1)  # fully covered by the cache...
    hits = bm.match_prefix(b)
    assert hits == (0,)  # ...but its last block must be computed again, into a block of its own
    compute(bm, b, 4, hits)
    assert b.block_table == [0, 2] and b.num_cached_tokens == 4
    # Block 2 now holds the same prefix as block 1; the newest copy is the one the cache finds.
    assert bm.cached_blocks == {k0: 0, k1: 2} and bm.blocks[1].key == k1
    bm.free(a)  # block 1 cannot be found any more: it goes to the front, reused first
    assert list(bm.free_block_ids) == [1, 3, 4, 5, 6, 7]
    assert bm.match_prefix(Sequence(list(range(9)), seq_id=2)) == (0, 2)


def test_a_colliding_key_with_different_tokens_is_a_miss():
    bm = BlockManager(num_blocks=4, block_size=4)
    compute(bm, Sequence([1, 2, 3, 4, 5], seq_id=0), 5)
    # Pretend the tokens 7, 7, 7, 7 hash to the key of the block holding 1, 2, 3, 4.
    bm.cached_blocks[compute_block_key([7, 7, 7, 7], None)] = 0
    assert bm.match_prefix(Sequence([7, 7, 7, 7, 8], seq_id=1)) == ()
    assert bm.match_prefix(Sequence([1, 2, 3, 4, 8], seq_id=2)) == (0,)


def test_freed_blocks_keep_their_keys_and_can_be_revived():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = Sequence(list(range(9)), seq_id=0)
    compute(bm, a, 9)
    bm.free(a)
    assert a.block_table == [] and all(b.ref_count == 0 for b in bm.blocks)
    # Released last block first; findable blocks join the back, the partial block the front.
    assert list(bm.free_block_ids) == [2, 3, 4, 5, 6, 7, 1, 0]
    assert sorted(bm.cached_blocks.values()) == [0, 1]
    b = Sequence(list(range(9)) + [50], seq_id=1)
    hits = bm.match_prefix(b)
    assert hits == (0, 1)
    assert bm.num_blocks_needed(b, 2, hits) == 3  # one new block + two revived from the free list
    compute(bm, b, 2, hits)
    assert b.block_table == [0, 1, 2] and b.num_cached_tokens == 8
    assert list(bm.free_block_ids) == [3, 4, 5, 6, 7]


def test_reusing_a_free_block_evicts_its_key():
    bm = BlockManager(num_blocks=3, block_size=4)
    a = Sequence(list(range(9)), seq_id=0)
    compute(bm, a, 9)
    bm.free(a)
    assert list(bm.free_block_ids) == [2, 1, 0]
    c = Sequence(list(range(100, 112)), seq_id=1)
    compute(bm, c, 12)
    assert c.block_table == [2, 1, 0]
    assert bm.cached_blocks == dict(zip(keys_of(c.token_ids, 4), [2, 1, 0], strict=True))
    assert bm.match_prefix(Sequence(list(range(9)), seq_id=2)) == ()


def test_decode_takes_a_block_only_when_the_last_one_is_full_and_keys_it_when_it_fills():
    bm = BlockManager(num_blocks=4, block_size=4)
    seq = Sequence([1, 2, 3, 4], seq_id=0)
    compute(bm, seq, 4)
    for token, new_blocks, table in [(5, 1, [0, 1]), (6, 0, [0, 1]), (7, 0, [0, 1]),
                                     (8, 0, [0, 1]), (9, 1, [0, 1, 2])]:
        seq.append_token(token)
        assert bm.num_blocks_needed(seq, 1) == new_blocks
        compute(bm, seq, 1)
        assert seq.block_table == table
        # A block is keyed in the step that computes its last token.
        assert len(bm.cached_blocks) == seq.num_computed_tokens // 4
    assert bm.cached_blocks == dict(zip(keys_of([1, 2, 3, 4, 5, 6, 7, 8], 4), [0, 1],
                                        strict=True))


def test_without_prefix_caching_nothing_is_keyed_or_shared():
    bm = BlockManager(num_blocks=4, block_size=2, enable_prefix_caching=False)
    a = Sequence([1, 2, 3, 4, 5], seq_id=0)
    compute(bm, a, 5)
    assert bm.cached_blocks == {} and all(b.key is None for b in bm.blocks)
    assert bm.match_prefix(Sequence([1, 2, 3, 4, 5], seq_id=1)) == ()
    bm.free(a)
    assert list(bm.free_block_ids) == [0, 1, 2, 3]  # all go to the front, first block first
