"""Turn a growing list of token ids into a growing string, one piece per new token.

Decoding token by token and concatenating goes wrong: a byte-level tokenizer may
spread one character over several tokens (UTF-8 is up to 4 bytes), and many tokenizers
decide spacing by looking at neighbouring tokens. So we decode the whole completion
each time and hand out only the part not handed out before, holding text back while it
ends in an incomplete character (shown by decoders as U+FFFD).
"""


class IncrementalDetokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.text = ""  # what has been handed out so far

    def update(self, token_ids: list[int], final: bool = False) -> str:
        """Given all completion ids so far, return the new text since the last call.

        ``final``: the request is over; hand out everything, even a broken last character.
        """
        text = self.tokenizer.decode(token_ids)
        if not text.startswith(self.text) or (text.endswith("\ufffd") and not final):
            return ""
        new_text, self.text = text[len(self.text):], text
        return new_text
