"""Bad input, row by row: each gets its exact message, and nothing else is lost.

Checkpoints have their own table (``test_bad_checkpoints.py``). Here: the arguments of
``generate``, prompts that fail alone in a batch, sampling and engine settings, and the
compiler's failures against the step's own.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from nanovllm.config import Config
from nanovllm.engine.torch_compile import CompiledOrEager
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)


@pytest.fixture(scope="module")
def llm():
    return LLM(device="cpu")


# generate(prompts, params) arguments that are not prompts or params at all: TypeError, and
# nothing is queued.
BAD_ARGUMENTS = [
    (5, None, "prompts must be a string, a list of token ids, or a list of those; got int"),
    (None, None, "prompts must be a string, a list of token ids, or a list of those; "
                 "got NoneType"),
    ({"a": 1}, None, "prompts must be a string, a list of token ids, or a list of those; "
                     "got dict"),
    ({}, None, "prompts must be a string, a list of token ids, or a list of those; got dict"),
    (["a"], {"temperature": 0}, "sampling_params must be a SamplingParams, a list of them "
                                "(one per prompt) or None; got dict"),
    (["a"], 0.5, "sampling_params must be a SamplingParams, a list of them (one per prompt) "
                 "or None; got float"),
]


@pytest.mark.parametrize("prompts, params, message", BAD_ARGUMENTS)
def test_a_bad_argument_is_a_type_error_naming_what_is_accepted(llm, prompts, params, message):
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        llm.generate(prompts, params, use_tqdm=False)
    assert llm.engine.is_finished()


# One bad prompt among good ones: its own error; the others run as if it were not there.
BAD_PROMPTS = [
    ("\ud800", "prompt is not valid Unicode text: surrogates not allowed at position 0"),
    ("ok \udfff", "prompt is not valid Unicode text: surrogates not allowed at position 3"),
    ("", "the prompt is empty; it needs at least one token"),
    ([], "the prompt is empty; it needs at least one token"),
    ([5, 4096, 6], "prompt token id 4096 at position 1 is outside the vocabulary [0, 4096)"),
    ([2**31], "prompt token id 2147483648 at position 0 is outside the vocabulary [0, 4096)"),
    ([-1], "prompt token id -1 at position 0 is outside the vocabulary [0, 4096)"),
    ([1, "2"], "prompt must be a string or a list of token ids, got list"),
    ([1.0, 2.0], "prompt must be a string or a list of token ids, got list"),
    ([True], "prompt must be a string or a list of token ids, got list"),
    (3.5, "prompt must be a string or a list of token ids, got float"),
    ({"text": "hi"}, "prompt must be a string or a list of token ids, got dict"),
    (None, "prompt must be a string or a list of token ids, got NoneType"),
    ([7] * 2048, "the prompt has 2048 tokens; it must be shorter than max_model_len=2048 to "
                 "leave room for output"),
]


@pytest.mark.parametrize("bad, message", BAD_PROMPTS)
def test_a_bad_prompt_fails_alone(llm, bad, message):
    good = ["ROMEO:", [9, 8, 7, 6]]
    expected = [o.token_ids for o in llm.generate(good, GREEDY, use_tqdm=False)]
    outputs = llm.generate([good[0], bad, good[1]], GREEDY, use_tqdm=False)
    assert (outputs[1].finish_reason, outputs[1].token_ids) == ("error", [])
    assert outputs[1].error == message
    assert [outputs[0].token_ids, outputs[2].token_ids] == expected
    assert llm.engine.is_finished()


def test_a_bad_params_entry_fails_alone(llm):
    outputs = llm.generate(["a", "b"], [GREEDY, {"temperature": 0}], use_tqdm=False)
    assert outputs[1].error == "sampling params must be a SamplingParams, got dict"
    assert outputs[0].finish_reason == "length"


def test_numpy_and_torch_prompts_are_token_ids(llm):
    ids = [5, 6, 7]
    expected = llm.generate([ids], GREEDY, use_tqdm=False)[0].token_ids
    for prompt in (np.array(ids), torch.tensor(ids), [np.int64(t) for t in ids],
                   (np.int32(5), 6, np.uint16(7))):
        (output,) = llm.generate(prompt, GREEDY, use_tqdm=False)
        assert (output.prompt_token_ids, output.token_ids) == (ids, expected)
    two = llm.generate(np.array([ids, ids]), GREEDY, use_tqdm=False)
    assert [o.token_ids for o in two] == [expected, expected]


# Settings refused when the object is made, before anything runs.
BAD_SETTINGS = [
    (lambda: SamplingParams(seed=-1), "seed=-1 is invalid: None or an int in [0, 2**64)"),
    (lambda: SamplingParams(seed=2**64), "seed=18446744073709551616 is invalid: None or an int "
                                         "in [0, 2**64)"),
    (lambda: SamplingParams(stop=[""]), "stop=[''] is invalid: a string or a list or tuple of "
                                        "non-empty strings"),
    (lambda: SamplingParams(stop=[3]), "stop=[3] is invalid: a string or a list or tuple of "
                                       "non-empty strings"),
    (lambda: SamplingParams(include_stop_str_in_output=1),
     "include_stop_str_in_output=1 is invalid: True or False"),
    (lambda: Config(seed=-1), "seed=-1 is invalid: an int in [0, 2**64)"),
    (lambda: LLM(device="cpu", num_kvcache_blocks=10**9),
     re.compile(r"num_kvcache_blocks=1000000000 is invalid: the cache would take 91,552\.7 GiB "
                r"\(98,304 bytes a block\), but there are [\d,.]+ GiB in this machine; lower "
                r"it, or leave it 0 to size the cache from memory")),
]


@pytest.mark.parametrize("make, message", BAD_SETTINGS)
def test_a_bad_setting_names_the_field_and_what_is_allowed(make, message):
    with pytest.raises(ValueError) as error:
        make()
    if isinstance(message, str):
        assert str(error.value) == message
    else:
        assert message.fullmatch(str(error.value)), str(error.value)


def test_a_seeded_request_gives_the_same_tokens_in_every_process(llm):
    params = SamplingParams(temperature=1.0, max_tokens=6, seed=2**64 - 1)
    (output,) = llm.generate(["ROMEO:"], params, use_tqdm=False)
    (again,) = llm.generate(["ROMEO:"], params, use_tqdm=False)
    assert output.token_ids == again.token_ids
    assert len(output.token_ids) == 6


def test_compile_falls_back_on_a_compiler_error_only():
    def add_one(x):
        torch._dynamo.graph_break()  # fullgraph=True cannot compile this: a compiler error
        return x + 1

    piece = CompiledOrEager(add_one)
    with pytest.warns(UserWarning, match="^torch.compile failed for add_one, running it eagerly: "
                                         "Unsupported: "):
        assert piece(torch.ones(2)).tolist() == [2.0, 2.0]
    assert piece.failed

    def out_of_memory(x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    kept = CompiledOrEager(lambda x: x + 1)
    kept.compiled = out_of_memory  # as the compiled kernel would raise it, mid-step
    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate 2.00 GiB"):
        kept(torch.ones(2))
    assert not kept.failed  # the next step runs compiled again
