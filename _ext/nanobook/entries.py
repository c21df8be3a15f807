"""The one line syntax that several directives share: a head line, then ``: `` and its text.

Slice annotations, quiz options and misconceptions are all lists of pairs (a
pattern and its note, an option and its feedback, a myth and its reality). In
the source they are written the way a definition list is written in MyST::

    `self.free_block_ids.popleft()`
    : Takes the oldest free block: the free list is a queue.

    - [x] The head of the free list
    : Right: ``allocate`` pops from the left.
      A second line of the same text is indented by two spaces.

The head is one line. The text starts on the next line after ``: `` and goes on
over the following lines indented by at least two spaces (blank lines inside it
are allowed when the next line is indented again); it is parsed as MyST, so it
may hold inline code, links, emphasis, even a code block. Entries are separated
by blank lines or simply follow each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docutils.statemachine import StringList


class EntrySyntaxError(ValueError):
    """A line that is neither a head, nor ``: `` text, nor its continuation."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset  # index of the offending line in the content


@dataclass
class Entry:
    head: str
    offset: int  # index of the head line in the content
    body: StringList = field(default_factory=StringList)

    @property
    def has_body(self) -> bool:
        return any(line.strip() for line in self.body)


def parse_entries(content: StringList, start: int = 0) -> list[Entry]:
    """Split ``content[start:]`` into entries; source information is kept for messages."""
    entries: list[Entry] = []
    current: Entry | None = None
    in_body = False
    pending_blank: list[tuple[str, str, int]] = []
    for index in range(start, len(content)):
        line = content[index]
        src, srcline = content.info(index)
        if not line.strip():
            if in_body:
                pending_blank.append(("", src, srcline))
            continue
        if line.startswith(": ") or line.rstrip() == ":":
            if current is None:
                raise EntrySyntaxError(f"text {line.strip()!r} comes before any item", index)
            if in_body:
                raise EntrySyntaxError(
                    f"a second ': ' text for {current.head!r}; continue the first one on lines "
                    "indented by two spaces instead", index)
            in_body = True
            pending_blank = []
            current.body.append(line[2:], src, srcline)
            continue
        if line.startswith("  ") and in_body:
            for blank in pending_blank:
                current.body.append(*blank)
            pending_blank = []
            current.body.append(line[2:], src, srcline)
            continue
        if line.startswith(" "):
            where = f"after {current.head!r}" if current else "before any item"
            raise EntrySyntaxError(
                f"indented line {line.strip()!r} {where} is not part of a ': ' text", index)
        current = Entry(line.strip(), index)
        entries.append(current)
        in_body = False
        pending_blank = []
    return entries
