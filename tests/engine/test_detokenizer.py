"""The incremental detokenizer and stop strings: text as it grows, equal to decoding it all.

Stop strings are checked against a naive reference: after every token, decode everything so far
(while it does not end in a broken character) and stop as soon as the text holds one.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from nanovllm.engine.detokenizer import IncrementalDetokenizer
from nanovllm.engine.llm_engine import resolve_model_folder
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams
from nanovllm.utils.tokenizer import Tokenizer

TOKENIZER = Tokenizer(resolve_model_folder(""))
PIECES = ["ROMEO", ":", "\n", " thee", " café", " naïve", " 🙂", "🙂🙂", " — ", "é", "1,024",
          " def f(x):", "\t", "ab", "abc", "b"]


class CountingTokenizer:
    """Counts the token ids decoded, to show the cost does not grow with the text."""

    def __init__(self, tokenizer):
        self.tokenizer, self.decoded = tokenizer, 0

    def decode(self, token_ids):
        self.decoded += len(token_ids)
        return self.tokenizer.decode(token_ids)


def feed(detokenizer, prompt_ids, completion_ids):
    """Feed one token at a time, as the engine does; return what ``take`` handed out each time."""
    token_ids, shown = list(prompt_ids), []
    for i, token in enumerate(completion_ids):
        token_ids.append(token)
        final = i == len(completion_ids) - 1
        detokenizer.update(token_ids, final=final)
        shown.append(detokenizer.take(final=final))
        if detokenizer.stop_reason is not None:
            break
    return shown


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12), st.integers(0, 5))
def test_streamed_text_is_exactly_the_whole_decode(pieces, cut):
    ids = TOKENIZER.encode("".join(pieces))
    prompt, completion = ids[:cut], ids[cut:] or ids
    shown = feed(IncrementalDetokenizer(TOKENIZER, len(prompt)), prompt, completion)
    assert "".join(shown) == TOKENIZER.decode(completion)


def test_broken_bytes_wait_for_the_rest_of_their_character():
    ids = TOKENIZER.encode("🙂")
    assert len(ids) > 1  # a byte-level vocabulary of 4,096 splits the emoji
    shown = feed(IncrementalDetokenizer(TOKENIZER, 0), [], ids)
    assert shown == [""] * (len(ids) - 1) + ["🙂"]


def test_the_cost_does_not_grow_with_the_text():
    ids = TOKENIZER.encode(" ".join(["ROMEO, thee café 🙂"] * 300))
    counting = CountingTokenizer(TOKENIZER)
    shown = feed(IncrementalDetokenizer(counting, 0), [], ids)
    assert "".join(shown) == TOKENIZER.decode(ids)
    # a short window per token, plus one whole decode at the end (quadratic would be ~n*n/2)
    assert counting.decoded < 8 * len(ids) + len(ids)


def test_a_tokenizer_that_spaces_by_context_streams_the_same_text():
    """SentencePiece-style: a word piece carries its space as "▁", which the decoder turns back
    into a space except at the very start of a text."""
    vocab = {"[UNK]": 0, "▁the": 1, "▁cat": 2, "s": 3, "▁sat": 4, ".": 5}
    backend = HFTokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()

    class Wrapped:
        def decode(self, ids):
            return backend.decode(ids)

    ids = [1, 2, 3, 4, 5, 1, 2]
    shown = feed(IncrementalDetokenizer(Wrapped(), 0), [], ids)
    assert "".join(shown) == backend.decode(ids) == "the cats sat. the cat"


def reference_stop(completion_ids, stops, include):
    """Decode everything after every token; at the first token after which the text holds a
    stop string, end the text at the earliest one."""
    for n in range(1, len(completion_ids) + 1):
        text = TOKENIZER.decode(completion_ids[:n])
        if text.endswith("\ufffd") and n < len(completion_ids):
            continue
        found = [(at, s) for s in stops if (at := text.find(s)) >= 0]
        if found:
            at, stop = min(found, key=lambda f: f[0])
            return text[:at + len(stop) * include], stop
    return TOKENIZER.decode(completion_ids), None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=10), st.data(), st.booleans())
def test_stop_strings_match_the_reference_and_never_show_removed_text(pieces, data, include):
    text = "".join(pieces)
    ids = TOKENIZER.encode(text)
    starts = data.draw(st.lists(st.integers(0, len(text) - 1), min_size=1, max_size=3))
    stops = tuple(text[i:i + data.draw(st.integers(1, 4))] for i in starts)
    detokenizer = IncrementalDetokenizer(TOKENIZER, 0, stops, include)
    shown = feed(detokenizer, [], ids)
    expected_text, expected_stop = reference_stop(ids, stops, include)
    assert detokenizer.stop_reason == expected_stop
    assert detokenizer.text == "".join(shown) == expected_text
    so_far = ""
    for piece in shown:  # what was shown is always a prefix of the final text
        so_far += piece
        assert expected_text.startswith(so_far)


@pytest.fixture(scope="module")
def llm():
    return LLM(device="cpu")


GREEDY = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)


def test_a_stop_string_across_tokens_ends_generate_and_stream_alike(llm):
    (free,) = llm.generate(["ROMEO:"], GREEDY, use_tqdm=False)
    assert free.text.startswith("\nI'll be with thee straight.\n")
    stop = "ith th"  # spans tokens: " with" and " thee" are not one token
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True, stop=[stop])
    (cut,) = llm.generate(["ROMEO:"], params, use_tqdm=False)
    assert (cut.text, cut.finish_reason, cut.stop_reason) == ("\nI'll be w", "stop", stop)
    # token_ids keep every token generated, up to the one that completed the stop string
    assert cut.token_ids == free.token_ids[:len(cut.token_ids)]
    assert llm.tokenizer.decode(cut.token_ids).startswith("\nI'll be with th")
    assert not llm.tokenizer.decode(cut.token_ids[:-1]).endswith("ith th")
    events = list(llm.stream(["ROMEO:"], params))
    assert "".join(e.text for e in events) == cut.text
    assert [e.token_id for e in events] == cut.token_ids
    assert events[-1].finish_reason == "stop"
    kept = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True, stop=(stop,),
                          include_stop_str_in_output=True)
    (with_stop,) = llm.generate(["ROMEO:"], kept, use_tqdm=False)
    assert with_stop.text == "\nI'll be with th"
    assert "".join(e.text for e in llm.stream(["ROMEO:"], kept)) == with_stop.text


def test_the_stop_string_found_first_wins_and_a_missing_one_changes_nothing(llm):
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True,
                            stop=["straight", "be"])
    (output,) = llm.generate(["ROMEO:"], params, use_tqdm=False)
    assert (output.text, output.stop_reason) == ("\nI'll ", "be")
    (plain,) = llm.generate(["ROMEO:"], SamplingParams(temperature=0.0, max_tokens=40,
                                                       stop=["never in this text"]),
                            use_tqdm=False)
    (free,) = llm.generate(["ROMEO:"], SamplingParams(temperature=0.0, max_tokens=40),
                           use_tqdm=False)
    assert (plain.text, plain.finish_reason, plain.stop_reason) == (
        free.text, free.finish_reason, None)


def test_the_cli_takes_stop_strings():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "nanovllm", "generate", "--device", "cpu",
                             "--temperature", "0", "--max-tokens", "40", "--ignore-eos",
                             "--stop", "straight", "--stop", "ith th", "ROMEO:"],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "\nI'll be w\n"), result.stderr
