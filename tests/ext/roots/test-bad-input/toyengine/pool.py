"""A pool of numbered blocks, handed out oldest first."""

from collections import deque


class Pool:
    """Blocks are handed out from the left of the free list and come back on the right."""

    def __init__(self, num_blocks: int) -> None:
        self.free = deque(range(num_blocks))
        self.used: set[int] = set()

    def take(self) -> int:
        block = self.free.popleft()
        self.used.add(block)
        return block

    def give_back(self, block: int) -> None:
        self.used.remove(block)
        self.free.append(block)


def fill(pool: Pool, n: int) -> list[int]:
    # region take-many
    taken = []
    for _ in range(n):
        taken.append(pool.take())
    # endregion take-many
    return taken
