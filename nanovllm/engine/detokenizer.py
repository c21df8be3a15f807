"""Turn a request's growing list of token ids into growing text, and find its stop strings.

Decoding token by token and concatenating goes wrong: a byte-level tokenizer may spread
one character over several tokens (UTF-8 is up to 4 bytes), and many tokenizers decide
spacing by looking at neighbouring tokens. Decoding the whole completion after every
token is right, but costs more the longer it grows. So the detokenizer decodes a short
window: the tokens it read last time (for context) plus the new ones, and keeps what the
new ones add. While the window ends in an incomplete character (U+FFFD) it waits. When the
request ends, the whole completion is decoded once, so the final text is exactly that.

Stop strings are searched in the text as it grows, so one found across token boundaries,
or inside a multi-byte character's tokens, counts the same. Text that a stop string found
later would cut off is never handed out: the last ``len(longest stop) - 1`` characters
wait until the request ends or more text follows.
"""


class IncrementalDetokenizer:
    def __init__(self, tokenizer, start: int, stop: tuple[str, ...] = (),
                 include_stop: bool = False):
        """``start``: where the completion begins in the token ids that ``update`` gets."""
        self.tokenizer = tokenizer
        self.stop, self.include_stop = stop, include_stop
        # A kept stop string removes nothing before its end, so nothing need wait.
        self.hold = max(map(len, stop)) - 1 if stop and not include_stop else 0
        self.start = start
        self.prefix_offset = self.read_offset = start  # the window: [prefix, read) read last
        self.text = ""  # the completion's text so far: whole characters, cut at a stop string
        self.shown = 0  # characters of ``text`` handed out by ``take``
        self.stop_reason: str | None = None  # the stop string found, once one is

    def update(self, token_ids: list[int], final: bool = False) -> None:
        """Read the ids past the last call (``token_ids`` holds them all, prompt included).

        ``final``: no more tokens will come; the text is completed even if its last
        character is broken.
        """
        if self.stop_reason is not None:
            return  # the text ended at the stop string; later tokens add nothing to it
        searched = len(self.text)
        decode = self.tokenizer.decode
        before = decode(token_ids[self.prefix_offset:self.read_offset])
        after = decode(token_ids[self.prefix_offset:])
        if final or not after.endswith("\ufffd"):
            self.text += after[len(before):]
            self.prefix_offset, self.read_offset = self.read_offset, len(token_ids)
        self.find_stop(searched)
        if final and self.stop_reason is None:
            whole = decode(token_ids[self.start:])
            if whole.startswith(self.text):  # a decoder that rewrites earlier text keeps ours
                self.text = whole

    def find_stop(self, searched: int) -> None:
        """Search the text added after ``searched`` characters (and the overlap a stop string
        could straddle); at the earliest match, end the text there."""
        found = [(at, s) for s in self.stop
                 if (at := self.text.find(s, max(0, searched - len(s) + 1))) >= 0]
        if found:
            at, self.stop_reason = min(found, key=lambda match: match[0])
            self.text = self.text[:at + len(self.stop_reason) * self.include_stop]

    def take(self, final: bool = False) -> str:
        """The text that can be shown now and was not handed out before."""
        end = len(self.text) if final or self.stop_reason else len(self.text) - self.hold
        if end <= self.shown:
            return ""
        new, self.shown = self.text[self.shown:end], end
        return new
