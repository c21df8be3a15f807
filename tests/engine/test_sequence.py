"""Sequence: counters and derived properties."""

from __future__ import annotations

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


def test_repr_is_short():
    assert repr(Sequence([1, 2], seq_id=3)) == (
        "Sequence(id=3, waiting, tokens=2, computed=0, blocks=[])")
