"""The reference a contiguous allocator is tested against: one owner per slot, searched slot by
slot.

It is written the plainest way on purpose, unlike the allocators it checks (the widget's
``contiguous.js`` and ``nanobook.fragmentation.FirstFitArena`` keep lists of regions and
holes): a region goes where the first run of ``length`` free slots ends, counting from slot 0.
"""

from __future__ import annotations


class SlotArena:
    def __init__(self, size: int):
        self.slots: list[str | None] = [None] * size
        self.tokens: dict[str, int] = {}

    def place(self, owner: str, length: int, tokens: int = 0) -> int | None:
        run = 0
        for i, slot in enumerate(self.slots):
            run = run + 1 if slot is None else 0
            if run == length:
                start = i - length + 1
                self.slots[start : i + 1] = [owner] * length
                self.tokens[owner] = tokens
                return start
        return None

    def grow(self, owner: str, tokens: int) -> bool:
        if self.tokens[owner] + tokens > self.slots.count(owner):
            return False
        self.tokens[owner] += tokens
        return True

    def release(self, owner: str) -> None:
        self.slots = [None if slot == owner else slot for slot in self.slots]
        del self.tokens[owner]

    def regions(self) -> dict[str, list[int]]:
        """owner -> [start, length, tokens], in order of address."""
        out = {}
        for i, slot in enumerate(self.slots):
            if slot is not None and slot not in out:
                out[slot] = [i, self.slots.count(slot), self.tokens[slot]]
        return out

    def holes(self) -> list[list[int]]:
        """[start, length] of every run of free slots, lowest address first."""
        holes: list[list[int]] = []
        for i, slot in enumerate(self.slots):
            if slot is None:
                if holes and holes[-1][0] + holes[-1][1] == i:
                    holes[-1][1] += 1
                else:
                    holes.append([i, 1])
        return holes


def replay(scenario: dict) -> list[dict]:
    """The widget's contiguous scenario format: the state after every operation."""
    arena = SlotArena(scenario["numSlots"])
    states = []
    for step in scenario["ops"]:
        if step["op"] == "add":
            ok = arena.place(step["seq"], step["reserve"], step["tokens"]) is not None
        elif step["op"] == "grow":
            ok = arena.grow(step["seq"], step["tokens"])
        else:
            arena.release(step["seq"])
            ok = True
        states.append({"ok": ok, "regions": arena.regions(), "holes": arena.holes()})
    return states
