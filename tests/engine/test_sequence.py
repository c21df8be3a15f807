"""Sequence: counters, derived properties, and the compact copy sent to a worker."""

from __future__ import annotations

import pickle

from nanovllm import SamplingParams
from nanovllm.engine.sequence import Sequence, SequenceStatus


def test_new_sequence_state():
    params = SamplingParams(max_tokens=3)
    seq = Sequence([5, 6, 7], params, seq_id=42)
    assert (seq.seq_id, seq.token_ids, seq.num_tokens, seq.num_prompt_tokens) == (42, [5, 6, 7], 3,
                                                                                  3)
    assert seq.status is SequenceStatus.WAITING and not seq.is_finished
    assert (seq.num_computed_tokens, seq.num_cached_tokens, seq.block_table) == (0, 0, [])
    assert seq.sampling_params is params and seq.finish_reason is None
    assert (seq.last_token_id, seq.num_completion_tokens, seq.completion_token_ids) == (7, 0, [])
    assert seq.num_blocks == 0


def test_token_list_is_copied_and_ids_are_unique_by_default():
    prompt = [1, 2]
    a, b = Sequence(prompt), Sequence(prompt)
    prompt.append(3)
    assert a.token_ids == [1, 2] and a.seq_id != b.seq_id
    assert a.sampling_params == SamplingParams()


def test_append_token_updates_the_derived_values():
    seq = Sequence([1, 2, 3], seq_id=0)
    seq.append_token(9)
    seq.append_token(8)
    assert (seq.num_tokens, seq.last_token_id) == (5, 8)
    assert (seq.prompt_token_ids, seq.completion_token_ids, seq.num_completion_tokens) == (
        [1, 2, 3], [9, 8], 2)


def decode_state(num_prompt_tokens: int) -> Sequence:
    """A sequence in the middle of decoding: everything but its newest token is computed."""
    seq = Sequence(list(range(num_prompt_tokens)), SamplingParams(temperature=0), seq_id=7)
    seq.block_table = [3, 1, 4]
    seq.num_computed_tokens = num_prompt_tokens
    seq.append_token(99)
    return seq


def test_pickle_sends_the_token_list_only_when_more_than_the_last_token_is_needed():
    seq = Sequence(list(range(40)), seq_id=7)
    seq.block_table = [3, 1, 4]
    prefill = pickle.loads(pickle.dumps(seq))  # nothing computed yet: the worker needs all tokens
    assert prefill.token_ids == list(range(40)) and prefill.block_table == [3, 1, 4]
    seq = decode_state(40)
    decode = pickle.loads(pickle.dumps(seq))
    assert decode.token_ids is None
    assert (decode.seq_id, decode.num_tokens, decode.last_token_id) == (7, 41, 99)
    assert (decode.num_computed_tokens, decode.num_prompt_tokens) == (40, 40)
    assert decode.block_table == [3, 1, 4]
    assert decode.sampling_params == SamplingParams(temperature=0)
    assert seq.token_ids[-1] == 99  # the original keeps its tokens


def test_decode_message_size_does_not_grow_with_the_sequence():
    short, long = (len(pickle.dumps(decode_state(n))) for n in (40, 4000))
    assert long - short <= 4  # only the counters' encoding differs


def test_repr_is_short():
    assert repr(Sequence([1, 2], seq_id=3)) == (
        "Sequence(id=3, waiting, tokens=2, computed=0, blocks=[])")
