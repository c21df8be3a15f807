"""How to pick each next token, and when to stop."""

from __future__ import annotations

from dataclasses import dataclass

from nanovllm.config import check_field, is_int, is_real


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling settings.

    Frozen because one object is usually shared by every prompt of a ``generate`` call: a
    change made for one request must not leak into the others.

    * ``temperature``: 0 is greedy (always the most likely token); higher flattens the odds.
    * ``top_k``: sample only among the k most likely tokens; -1 or 0 turns it off.
    * ``top_p``: sample only among the most likely tokens whose probabilities add up to
      ``top_p`` (nucleus sampling); 1 turns it off.
    * ``max_tokens``: at most this many new tokens (finish reason "length").
    * ``ignore_eos``: keep generating past the end-of-sequence token (handy for benchmarks).
    * ``seed``: a per-request random seed, so a sampled answer can be reproduced.
    * ``stop_token_ids``: extra token ids that end the request like EOS does (finish reason
      "stop"); the stop token is kept as the last completion token.
    * ``stop``: strings that end the request when they appear in its text (finish reason
      "stop", ``stop_reason`` the string). The text ends before the string unless
      ``include_stop_str_in_output``; ``token_ids`` keep every token generated.
    * ``prompt_logprobs``: also return the log-probability of every prompt token after the
      first, given those before it (``engine/scoring.py``): what scoring a text needs. The
      prompt is then computed whole, never taken from the prefix cache.
    """

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    max_tokens: int = 64
    ignore_eos: bool = False
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    prompt_logprobs: bool = False

    def __post_init__(self) -> None:
        check_field(is_real(self.temperature) and self.temperature >= 0, "temperature",
                    self.temperature, "a finite number >= 0 (0 means greedy)")
        check_field(is_int(self.top_k) and self.top_k >= -1, "top_k", self.top_k,
                    "an int >= 1, or -1 or 0 for no top-k")
        check_field(is_real(self.top_p) and 0 < self.top_p <= 1, "top_p", self.top_p,
                    "a number in (0, 1] (1 means no top-p)")
        check_field(is_int(self.max_tokens) and self.max_tokens >= 1, "max_tokens",
                    self.max_tokens, "an int >= 1")
        check_field(isinstance(self.ignore_eos, bool), "ignore_eos", self.ignore_eos,
                    "True or False")
        check_field(self.seed is None or (is_int(self.seed) and 0 <= self.seed < 2**64), "seed",
                    self.seed, "None or an int in [0, 2**64)")
        stop_ids = self.stop_token_ids
        check_field(isinstance(stop_ids, (list, tuple))
                    and all(is_int(t) and t >= 0 for t in stop_ids),
                    "stop_token_ids", stop_ids, "a list or tuple of token ids (ints >= 0)")
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        check_field(isinstance(stop, (list, tuple)) and all(isinstance(s, str) and s for s in stop),
                    "stop", self.stop, "a string or a list or tuple of non-empty strings")
        check_field(isinstance(self.include_stop_str_in_output, bool),
                    "include_stop_str_in_output", self.include_stop_str_in_output, "True or False")
        check_field(isinstance(self.prompt_logprobs, bool), "prompt_logprobs",
                    self.prompt_logprobs, "True or False")
        # Store tuples whatever came in, so the object stays immutable and hashable.
        object.__setattr__(self, "stop_token_ids", tuple(stop_ids))
        object.__setattr__(self, "stop", tuple(stop))
