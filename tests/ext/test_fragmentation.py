"""Chapter 4's measurement (``nanobook.fragmentation``): the first-fit arena against a plain
reference, the engine's Scheduler driving contiguous reservations, and the values the prose
prints."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from nanobook import fragmentation
from nanobook.fragmentation import ContiguousReservations, FirstFitArena, replay

from nanovllm.bench.workloads import Request, Workload
from tests.ext.contiguous_reference import SlotArena


def test_first_fit_arena_matches_the_slot_by_slot_reference():
    rng = random.Random(4)
    for _ in range(300):
        size = rng.randint(1, 40)
        arena, reference, alive, made = FirstFitArena(size), SlotArena(size), [], 0
        for _ in range(rng.randint(1, 30)):
            if alive and rng.random() < 0.4:
                owner = alive.pop(rng.randrange(len(alive)))
                arena.release(owner)
                reference.release(owner)
            else:
                owner, made = f"s{made}", made + 1
                length = rng.randint(1, size)
                start = arena.place(owner, length)
                assert start == reference.place(owner, length)
                if start is not None:
                    alive.append(owner)
            assert [list(h) for h in arena.holes()] == reference.holes()
            assert {o: [s, n, 0] for o, (s, n) in arena.regions.items()} == reference.regions()
            assert arena.free == reference.slots.count(None)


def test_a_hole_too_small_refuses_a_region_that_the_free_total_could_hold():
    arena = FirstFitArena(10)
    for owner, length in (("a", 3), ("b", 4), ("c", 3)):
        arena.place(owner, length)
    arena.release("a")
    arena.release("c")
    assert arena.holes() == [(0, 3), (7, 3)] and arena.free == 6
    assert arena.place("d", 4) is None and arena.free == 6  # refused, nothing changed
    assert arena.place("e", 3) == 0


def test_bad_regions_are_refused_with_a_message():
    arena = FirstFitArena(4)
    arena.place("a", 1)
    with pytest.raises(ValueError, match="'a' already holds a region"):
        arena.place("a", 1)
    with pytest.raises(ValueError, match="a region needs at least one slot, not 0"):
        arena.place("b", 0)


def workload(*requests: tuple[int, int], max_model_len: int = 64) -> Workload:
    """Requests of (prompt tokens, max_tokens), every one arriving at once."""
    return Workload("t", "test", [Request(list(range(p)), m) for p, m in requests], {},
                    engine_settings={"max_model_len": max_model_len})


def test_contiguous_reservations_admit_in_order_and_wait_for_a_hole():
    # 32 slots. Under prompt-plus-max A takes [0, 12), B [12, 28); C needs 8 and waits for A.
    run = replay("prompt-plus-max", workload((4, 8), (6, 10), (2, 6)), arena_blocks=8,
                 block_size=4)
    assert [(s.running, s.reserved) for s in run.steps[:2]] == [(2, 28), (2, 28)]
    # A's 8th token comes in step 8 (its prefill samples the first), which frees its region;
    # C starts in A's hole in step 9; B's 10th token ends it in step 10.
    assert [s.running for s in run.steps[6:10]] == [2, 1, 2, 1]
    assert run.steps[7].reserved == 16 and run.steps[8].reserved == 24
    assert len(run.steps) == 14 and run.preemptions == 0
    # While C waits, the 4 free slots are too few in total: no step is blocked by holes.
    assert not any(s.blocked_by_holes for s in run.steps)


def test_each_reserved_slot_holds_a_token_waits_for_one_or_is_never_used():
    # After step 1 A holds its 4 prompt tokens in 12 slots and will store 11 (its last token is
    # never fed back): 7 slots wait, 1 is never used. B: 6 held, 9 waiting, 1 never used.
    run = replay("prompt-plus-max", workload((4, 8), (6, 10), (2, 6)), arena_blocks=8,
                 block_size=4)
    first = run.steps[0]
    assert (first.reserved, first.held, first.future) == (28, 10, 16)
    assert first.waiting and first.computed == 10  # C waits; the step computed two prompts
    # max_model_len=16 reserves 16 for each: the same tokens held and to come, 6 never used.
    first = replay("max-model-len", workload((4, 8), (6, 10), (2, 6), max_model_len=16),
                   arena_blocks=8, block_size=4).steps[0]
    assert (first.reserved, first.held, first.future) == (32, 10, 16)


def test_summary_shares_of_reserved_slots_add_up_and_tokens_computed_count_recomputation():
    requests = workload((4, 8), (6, 10), (2, 6))
    contiguous = replay("prompt-plus-max", requests, arena_blocks=8, block_size=4).summary()
    assert contiguous["tokens_computed"] == 11 + 15 + 7  # every request once, last token unstored
    shares = (contiguous["mean_share"] + contiguous["mean_future_share"]
              + contiguous["mean_unused_share"])
    assert shares == pytest.approx(1.0)
    paged = replay("paged", requests, arena_blocks=6, block_size=4)
    assert paged.preemptions > 0 and paged.summary()["tokens_computed"] > 11 + 15 + 7
    held = [s.held / 24 for s in paged.steps if s.waiting]
    assert paged.summary()["waiting_arena_share"] == pytest.approx(sum(held) / len(held))


def test_the_summary_table_has_a_column_per_policy_and_a_row_per_quantity():
    run = replay("prompt-plus-max", workload((4, 8), (6, 10), (2, 6)), arena_blocks=8,
                 block_size=4)
    lines = fragmentation.summary_table({"prompt-plus-max": run}).splitlines()
    assert lines[0] == " " * 32 + " prompt-plus-max"
    assert lines[1] == f"{'steps to finish every request':32}{'14':>16}"
    assert lines[2] == f"{'tokens computed':32}{'33':>16}"
    assert len(lines) == 1 + len(fragmentation.TABLE_ROWS)


def test_max_model_len_reserves_the_longest_sequence_for_everyone():
    run = replay("max-model-len", workload((4, 8), (6, 10), (2, 6), max_model_len=16),
                 arena_blocks=8, block_size=4)
    assert run.steps[0].reserved == 32 and run.steps[0].running == 2
    assert run.steps[0].held == 4 + 6
    summary = run.summary()
    assert summary["max_running"] == 2 and summary["steps"] == 8 + 6


def test_steps_blocked_by_holes_are_counted():
    # 24 slots: A [0, 8), B [8, 16), C [16, 24). A and C end in step 4, leaving two holes of
    # 8; D needs 12 (16 free in total) and waits until B ends in step 6.
    run = replay("prompt-plus-max", workload((4, 4), (2, 6), (4, 4), (6, 6)), arena_blocks=6,
                 block_size=4)
    blocked = [i + 1 for i, s in enumerate(run.steps) if s.blocked_by_holes]
    assert blocked == [4, 5]
    assert run.steps[3].reserved == 8 and run.steps[6].reserved == 12


def test_paging_holds_only_whole_blocks_and_preempts_when_the_pool_runs_out():
    run = replay("paged", workload((4, 8), (6, 10), (2, 6)), arena_blocks=6, block_size=4)
    first = run.steps[0]
    assert (first.running, first.held, first.reserved) == (3, 12, 16)  # 1 + 2 + 1 blocks
    assert run.preemptions > 0
    assert all(s.held <= s.reserved <= 24 for s in run.steps)


def test_a_sequence_that_outgrows_its_reservation_is_an_error():
    memory = ContiguousReservations(8, 4, lambda seq: 3)
    seq = SimpleNamespace(seq_id=0, num_computed_tokens=0)
    memory.allocate(seq, 3)
    seq.num_computed_tokens = 3
    with pytest.raises(RuntimeError, match="sequence 0 outgrew its 3 reserved slots"):
        memory.allocate(seq, 1)


def test_workload_a_in_the_chapters_arena():
    runs = {p: fragmentation.workload_a_run(p).summary() for p in fragmentation.POLICIES}
    assert runs["max-model-len"]["max_running"] == 16  # 65,536 slots / 4,096
    assert runs["paged"]["mean_share"] > runs["prompt-plus-max"]["mean_share"] \
        > runs["max-model-len"]["mean_share"]
    assert runs["paged"]["mean_running"] > runs["prompt-plus-max"]["mean_running"] \
        > runs["max-model-len"]["mean_running"]
    assert runs["paged"]["steps_blocked_by_holes"] == 0
    # Every request stores its prompt and all but its last generated token, once...
    assert runs["max-model-len"]["tokens_computed"] == runs["prompt-plus-max"]["tokens_computed"] \
        == 276_537
    # ...except that paging recomputes the requests it preempts.
    assert runs["paged"]["tokens_computed"] > 276_537
    # prompt-plus-max reserves exactly what each request stores, plus its unstored last token.
    assert runs["prompt-plus-max"]["mean_unused_share"] < 0.01
    assert runs["max-model-len"]["mean_unused_share"] > runs["max-model-len"]["mean_share"]


def test_value_errors_name_what_is_allowed():
    ctx = SimpleNamespace(note=lambda path: path)
    assert fragmentation.kv_fragmentation(ctx, "setting", "arena_slots") == 65_536
    with pytest.raises(ValueError, match="policy='buddy' is invalid: one of max-model-len, "
                                         "prompt-plus-max, paged"):
        fragmentation.kv_fragmentation(ctx, "buddy", "steps")
    with pytest.raises(ValueError, match="quantity='speed' is invalid: one of steps, "):
        fragmentation.kv_fragmentation(ctx, "paged", "speed")
    with pytest.raises(ValueError, match="no setting 'colour'; one of arena_blocks, "):
        fragmentation.kv_fragmentation(ctx, "setting", "colour")


def test_engine_constants_are_read_from_the_engines_source():
    from nanobook.values import ValueContext, engine_constant

    from tests.ext.conftest import ROOT

    config = SimpleNamespace(nanobook_engine_root=str(ROOT), nanobook_engine_packages=["nanovllm"])
    ctx = ValueContext(ROOT, config)
    module = "nanovllm.kernels.decode_attention"
    assert engine_constant(ctx, module, "MAX_SPLITS") == 32
    assert engine_constant(ctx, module, "DECODE_TILE.BLOCK_N") == 128
    assert ctx.used_files == [ROOT / "nanovllm" / "kernels" / "decode_attention.py"] * 2
    with pytest.raises(ValueError, match="DECODE_TILE has no key 'rows'; keys: BLOCK_N, "):
        engine_constant(ctx, module, "DECODE_TILE.rows")
    with pytest.raises(ValueError, match="has no module-level constant 'SPLITS'"):
        engine_constant(ctx, module, "SPLITS")
    with pytest.raises(ValueError, match="the engine has no module 'nanovllm.kernels.nothing'"):
        engine_constant(ctx, "nanovllm.kernels.nothing", "X")
    with pytest.raises(ValueError, match="the engine has no module 'conf'"):
        engine_constant(ctx, "conf", "project")
