"""Chapter 4's measurement: one workload's admissions and completions under three ways of
placing keys and values, in the same memory.

The engine's own ``Scheduler`` runs workload (a) of ``nanovllm/bench/workloads.py`` step by
step, without a model (every request samples token 0 and ignores EOS, so it generates exactly
its ``max_tokens``). Only where memory comes from changes between the three runs:

* ``paged``: the engine as it is, its ``BlockManager`` handing out blocks as tokens arrive
  (prefix caching off: workload (a)'s prompts are random and share nothing);
* ``max-model-len``: every admitted request reserves ``max_model_len`` slots at once, in one
  run of neighbouring slots of an arena, placed first fit (what early servers did);
* ``prompt-plus-max``: the same, reserving the prompt plus ``max_tokens`` (the most a server
  knows when it admits a request).

The contiguous runs put a ``ContiguousReservations`` where the scheduler keeps its block
manager; the scheduler's budgets, its first-come-first-served admission and everything else
stay the engine's. Each run records, after every step, the slots reserved, how many of them
hold a token's keys and values and how many wait for tokens still to come (the rest are never
used), the requests running and whether any wait, and the tokens the step computed.

``{value}`kv_fragmentation:POLICY,QUANTITY``` prints one figure of a run (``QUANTITIES``).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass

POLICIES = ("max-model-len", "prompt-plus-max", "paged")
ARENA_BLOCKS = 4096  # the memory every policy gets: 4,096 blocks of BLOCK_SIZE token slots
BLOCK_SIZE = 16  # the engine's default


class FirstFitArena:
    """``size`` slots in a row. A region is a run of neighbouring slots; a new one goes into
    the hole with the lowest address that is long enough (first fit)."""

    def __init__(self, size: int):
        self.size = size
        self.regions: dict[Hashable, tuple[int, int]] = {}  # owner -> (start, length)
        self._starts: list[int] = []  # region starts, sorted
        self._owner_at: dict[int, Hashable] = {}

    @property
    def free(self) -> int:
        return self.size - sum(length for _, length in self.regions.values())

    def holes(self) -> list[tuple[int, int]]:
        """(start, length) of every run of free slots, lowest address first."""
        holes, cursor = [], 0
        for start in self._starts:
            if start > cursor:
                holes.append((cursor, start - cursor))
            cursor = start + self.regions[self._owner_at[start]][1]
        if cursor < self.size:
            holes.append((cursor, self.size - cursor))
        return holes

    def first_fit(self, length: int) -> int | None:
        """Where a region of ``length`` slots would start; None if no hole is long enough."""
        return next((start for start, room in self.holes() if room >= length), None)

    def place(self, owner: Hashable, length: int) -> int | None:
        """Give ``owner`` a region of ``length`` slots; its start, or None (nothing changes)."""
        if owner in self.regions:
            raise ValueError(f"{owner!r} already holds a region")
        if length < 1:
            raise ValueError(f"a region needs at least one slot, not {length}")
        start = self.first_fit(length)
        if start is not None:
            self.regions[owner] = (start, length)
            self._owner_at[start] = owner
            bisect.insort(self._starts, start)
        return start

    def release(self, owner: Hashable) -> None:
        start, _ = self.regions.pop(owner)
        del self._owner_at[start]
        self._starts.remove(start)


class ContiguousReservations:
    """Stands in for the engine's ``BlockManager`` under its ``Scheduler``: an admitted
    sequence gets one region of ``reserve(seq)`` slots at once and never needs more.

    The scheduler asks ``num_blocks_needed(...) <= num_free_blocks`` before it admits or
    grows a sequence; here both count slots, and a sequence that holds its region needs 0.
    """

    def __init__(self, num_slots: int, block_size: int, reserve: Callable[[object], int]):
        self.arena = FirstFitArena(num_slots)
        self.block_size = block_size
        self.num_blocks = num_slots // block_size  # what Scheduler.add checks a request against
        self.reserve = reserve

    @property
    def num_free_blocks(self) -> int:
        return self.arena.free

    def match_prefix(self, seq) -> tuple[int, ...]:
        return ()

    def num_blocks_needed(self, seq, num_new_tokens: int, hits: tuple[int, ...] = ()) -> int:
        if seq.seq_id in self.arena.regions:
            return 0
        return 0 if self.arena.first_fit(self.reserve(seq)) is not None else self.arena.free + 1

    def allocate(self, seq, num_new_tokens: int, hits: tuple[int, ...] = ()) -> None:
        if seq.seq_id not in self.arena.regions:
            self.arena.place(seq.seq_id, self.reserve(seq))
        _, length = self.arena.regions[seq.seq_id]
        if seq.num_computed_tokens + num_new_tokens > length:
            raise RuntimeError(f"sequence {seq.seq_id} outgrew its {length} reserved slots")

    def free(self, seq) -> None:
        self.arena.release(seq.seq_id)


@dataclass
class Step:
    reserved: int  # slots set aside for running requests
    held: int  # of which hold a token's keys and values
    future: int  # of which wait for tokens the requests will still store
    running: int
    blocked_by_holes: bool  # the next request waits although enough slots are free in total
    waiting: bool  # some request waits to be admitted
    computed: int  # tokens the step computed (prompts, recomputations and decodes)


@dataclass
class Run:
    policy: str
    arena_slots: int
    steps: list[Step]
    preemptions: int

    @property
    def shares(self) -> list[float]:
        return [s.held / s.reserved for s in self.steps if s.reserved]

    def summary(self) -> dict[str, float | int]:
        busiest = max(self.steps, key=lambda s: s.held)
        reserving = [s for s in self.steps if s.reserved]
        queued = [s for s in self.steps if s.waiting]  # the memory decides who runs
        return {
            "steps": len(self.steps),
            "mean_share": sum(self.shares) / len(self.shares),
            "mean_future_share": _mean(s.future / s.reserved for s in reserving),
            "mean_unused_share": _mean((s.reserved - s.held - s.future) / s.reserved
                                       for s in reserving),
            "busiest_share": busiest.held / busiest.reserved,
            "busiest_held": busiest.held,
            "mean_arena_share": sum(s.held for s in self.steps) / len(self.steps) / self.arena_slots,
            "waiting_arena_share": _mean(s.held / self.arena_slots for s in queued),
            "waiting_free_share": _mean((self.arena_slots - s.reserved) / self.arena_slots
                                        for s in queued),
            "mean_running": sum(s.running for s in self.steps) / len(self.steps),
            "max_running": max(s.running for s in self.steps),
            "steps_blocked_by_holes": sum(s.blocked_by_holes for s in self.steps),
            "preemptions": self.preemptions,
            "tokens_computed": sum(s.computed for s in self.steps),
        }


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


QUANTITIES = ("steps", "mean_share", "mean_future_share", "mean_unused_share", "busiest_share",
              "busiest_held", "mean_arena_share", "waiting_arena_share", "waiting_free_share",
              "mean_running", "max_running", "steps_blocked_by_holes", "preemptions",
              "tokens_computed")


# The rows of the chapter's table: label, quantity of ``Run.summary()``, format.
TABLE_ROWS = (("steps to finish every request", "steps", "{:,}"),
              ("tokens computed", "tokens_computed", "{:,}"),
              ("reserved slots holding tokens", "mean_share", "{:.0%}"),
              ("  waiting for tokens to come", "mean_future_share", "{:.0%}"),
              ("  never used", "mean_unused_share", "{:.0%}"),
              ("arena with tokens, some waiting", "waiting_arena_share", "{:.0%}"),
              ("requests at once, mean", "mean_running", "{:.1f}"),
              ("requests at once, most", "max_running", "{:,}"),
              ("steps blocked by holes", "steps_blocked_by_holes", "{:,}"),
              ("preemptions", "preemptions", "{:,}"))


def summary_table(runs: dict[str, Run]) -> str:
    """The runs side by side, one column per policy and one row per ``TABLE_ROWS`` entry."""
    summaries = {policy: run.summary() for policy, run in runs.items()}
    lines = [" " * 32 + "".join(f"{policy:>16}" for policy in summaries)]
    for label, quantity, form in TABLE_ROWS:
        cells = "".join(f"{form.format(s[quantity]):>16}" for s in summaries.values())
        lines.append(f"{label:32}{cells}")
    return "\n".join(lines)


def reservation(policy: str, max_model_len: int) -> Callable[[object], int] | None:
    """Slots a contiguous policy sets aside for a sequence; None for paging."""
    if policy == "max-model-len":
        return lambda seq: max_model_len
    if policy == "prompt-plus-max":
        return lambda seq: seq.num_prompt_tokens + seq.sampling_params.max_tokens
    if policy == "paged":
        return None
    raise ValueError(f"policy={policy!r} is invalid: one of {', '.join(POLICIES)}")


def replay(policy: str, workload, arena_blocks: int = ARENA_BLOCKS,
           block_size: int = BLOCK_SIZE) -> Run:
    """Run every request of ``workload`` through the engine's Scheduler under ``policy``."""
    from nanovllm.config import Config
    from nanovllm.engine.scheduler import Scheduler
    from nanovllm.engine.sequence import Sequence

    max_model_len = workload.engine_settings.get("max_model_len", Config.max_model_len)
    reserve = reservation(policy, max_model_len)
    config = Config(num_kvcache_blocks=arena_blocks, block_size=block_size,
                    max_model_len=max_model_len, enable_prefix_caching=False)
    scheduler = Scheduler(config, eos_token_id=None)
    for i, request in enumerate(workload.requests):
        scheduler.add(Sequence(request.prompt_token_ids, workload.sampling_params(request), i))
    memory = scheduler.block_manager
    if reserve is not None:
        memory = scheduler.block_manager = ContiguousReservations(
            arena_blocks * block_size, block_size, reserve)
    steps, preemptions = [], 0
    while not scheduler.is_finished():
        batch = scheduler.schedule()
        scheduler.postprocess(batch, [0] * sum(batch.do_sample))
        preemptions += len(batch.preempted_seq_ids)
        steps.append(_measure(scheduler, memory, reserve, block_size, batch.num_tokens))
    return Run(policy, arena_blocks * block_size, steps, preemptions)


def _measure(scheduler, memory, reserve, block_size: int, computed: int) -> Step:
    held = sum(seq.num_computed_tokens for seq in scheduler.running)
    if reserve is None:
        reserved = (memory.num_blocks - memory.num_free_blocks) * block_size
        blocked = False  # any free block serves any request
        regions = [len(seq.block_table) * block_size for seq in scheduler.running]
    else:
        reserved = memory.arena.size - memory.arena.free
        head = scheduler.waiting[0] if scheduler.waiting else None
        blocked = (head is not None and memory.arena.first_fit(reserve(head)) is None
                   and memory.arena.free >= reserve(head))
        regions = [memory.arena.regions[seq.seq_id][1] for seq in scheduler.running]
    future = sum(min(region, _final_length(seq, scheduler.config.max_model_len))
                 - seq.num_computed_tokens
                 for seq, region in zip(scheduler.running, regions, strict=True))
    return Step(reserved, held, future, len(scheduler.running), blocked,
                bool(scheduler.waiting), computed)


def _final_length(seq, max_model_len: int) -> int:
    """Tokens whose keys and values a request stores by the time it finishes: its prompt and
    every generated token but the last (ignore_eos: it generates all of ``max_tokens``)."""
    return min(seq.num_prompt_tokens + seq.sampling_params.max_tokens, max_model_len) - 1


@functools.cache
def workload_a_run(policy: str) -> Run:
    """The run the chapter shows: workload (a), seed 0, in ARENA_BLOCKS blocks of BLOCK_SIZE."""
    from nanovllm.bench.workloads import throughput

    return replay(policy, throughput())


def kv_fragmentation(ctx, policy: str, quantity: str) -> float | int:
    """``{value}`kv_fragmentation:POLICY,QUANTITY```: one figure of workload (a)'s run under
    POLICY; ``kv_fragmentation:setting,NAME`` gives the setting (``arena_blocks``,
    ``block_size``, ``arena_slots``, ``max_model_len``, ``requests``, ``min_len``, ``max_len``)."""
    from nanovllm.bench import workloads

    for module in ("nanovllm.bench.workloads", "nanovllm.engine.scheduler",
                   "nanovllm.engine.block_manager", "nanovllm.engine.sequence"):
        ctx.note(_module_path(module))
    if policy == "setting":
        workload = workloads.throughput()
        settings = {"arena_blocks": ARENA_BLOCKS, "block_size": BLOCK_SIZE,
                    "arena_slots": ARENA_BLOCKS * BLOCK_SIZE,
                    "max_model_len": workload.engine_settings["max_model_len"],
                    "requests": len(workload.requests),
                    "min_len": workload.parameters["min_len"],
                    "max_len": workload.parameters["max_len"]}
        if quantity not in settings:
            raise ValueError(f"no setting {quantity!r}; one of {', '.join(settings)}")
        return settings[quantity]
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity={quantity!r} is invalid: one of {', '.join(QUANTITIES)}")
    reservation(policy, 0)  # names the policies when it is not one
    return workload_a_run(policy).summary()[quantity]


def _module_path(module: str):
    import importlib.util
    from pathlib import Path

    return Path(importlib.util.find_spec(module).origin)


VALUES = {"kv_fragmentation": kv_fragmentation}
