"""LLM.generate / LLM.stream / the CLI: ordering, text, finish reasons, bad input, KV-cache sizing."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nanovllm.engine.kv_cache import block_bytes
from nanovllm.llm import LLM
from nanovllm.sampling_params import SamplingParams
from tests.engine.model_fixtures import tiny_checkpoint

GREEDY = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def llm():
    return LLM(str(tiny_checkpoint("qwen3")), dtype="float32", max_model_len=64,
               num_kvcache_blocks=64, max_num_seqs=16)


def test_outputs_come_back_in_input_order_with_text_and_ids(llm):
    prompts = ["The quick brown fox", [5, 6, 7], "x" * 40, "é"]
    params = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True) for n in (9, 2, 5, 1)]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    assert [o.index for o in outputs] == [0, 1, 2, 3]
    assert [len(o.token_ids) for o in outputs] == [9, 2, 5, 1]
    assert all(o.finish_reason == "length" and o.error is None for o in outputs)
    assert outputs[0].prompt == "The quick brown fox" and outputs[1].prompt is None
    assert outputs[1].prompt_token_ids == [5, 6, 7]
    assert outputs[0].prompt_token_ids == llm.tokenizer.encode("The quick brown fox")
    for output in outputs:
        assert output.text == llm.tokenizer.decode(output.token_ids)


def test_one_prompt_and_one_params_are_accepted(llm):
    (output,) = llm.generate("hello", GREEDY, use_tqdm=False)
    (again,) = llm.generate([llm.tokenizer.encode("hello")], [GREEDY], use_tqdm=False)
    assert output.token_ids == again.token_ids and len(output.token_ids) == 8


def test_stop_token_and_max_model_len_finish_reasons(llm):
    (free,) = llm.generate("abc", GREEDY, use_tqdm=False)
    stop_at = free.token_ids[3]
    stopped = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True,
                             stop_token_ids=(stop_at,))
    (output,) = llm.generate("abc", stopped, use_tqdm=False)
    assert output.finish_reason == "stop"
    assert output.token_ids[-1] == stop_at and stop_at not in output.token_ids[:-1]
    long = SamplingParams(temperature=0.0, max_tokens=1000, ignore_eos=True)
    (capped,) = llm.generate([1] * 60, long, use_tqdm=False)
    assert capped.finish_reason == "length" and len(capped.token_ids) == 64 - 60


@pytest.mark.parametrize("bad_prompt, message", [
    ("", "prompt is empty"),
    ([], "prompt is empty"),
    ([1] * 64, "max_model_len"),
    ([5, 320, 6], "token id 320 at position 1 is outside the vocabulary \\[0, 320\\)"),
    ([-1], "token id -1 at position 0"),
    ({"text": "hi"}, "prompt must be a string or a list of token ids, got dict"),
])
def test_a_bad_prompt_fails_alone(llm, bad_prompt, message):
    good = ["one good prompt", [9, 8, 7, 6]]
    expected = [o.token_ids for o in llm.generate(good, GREEDY, use_tqdm=False)]
    outputs = llm.generate([good[0], bad_prompt, good[1]], GREEDY, use_tqdm=False)
    assert outputs[1].finish_reason == "error" and outputs[1].token_ids == []
    assert outputs[1].error is not None
    assert pytest.importorskip("re").search(message, outputs[1].error), outputs[1].error
    assert [outputs[0].token_ids, outputs[2].token_ids] == expected


def test_bad_sampling_values_are_refused_by_name(llm):
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-0.5)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    outputs = llm.generate(["fine", "not fine"], [GREEDY, {"temperature": 0}], use_tqdm=False)
    assert outputs[0].finish_reason == "length"
    assert outputs[1].finish_reason == "error" and "SamplingParams" in outputs[1].error
    with pytest.raises(ValueError, match="2 sampling params for 3 prompts"):
        llm.generate(["a", "b", "c"], [GREEDY, GREEDY], use_tqdm=False)


def test_stream_yields_every_token_and_the_same_text(llm):
    prompts = ["stream me", [3, 4], ""]
    expected = llm.generate(prompts, GREEDY, use_tqdm=False)
    events = list(llm.stream(prompts, GREEDY))
    assert [e.error is not None for e in events if e.index == 2] == [True]
    for i in (0, 1):
        mine = [e for e in events if e.index == i]
        assert [e.token_id for e in mine] == expected[i].token_ids
        assert "".join(e.text for e in mine) == expected[i].text
        assert [e.finish_reason for e in mine] == [None] * 7 + ["length"]


def test_progress_bar_reports_requests_and_throughput(llm, capsys):
    llm.generate(["a", "b", "c"], GREEDY, use_tqdm=True)
    progress = capsys.readouterr().err
    assert "3/3" in progress and "req" in progress and "tok/s" in progress
    assert llm.last_run.generated_tokens == 24 and llm.last_run.seconds > 0


def test_kv_cache_has_the_taught_layout_and_cpu_budget(llm):
    runner = llm.engine.model_runner
    config = llm.engine.model_config
    assert runner.kv_cache.shape == (2, config.num_hidden_layers, 64, 16,
                                     config.num_key_value_heads, config.head_dim)
    if runner.device.type == "cpu":
        sized = LLM(str(tiny_checkpoint("qwen3")), dtype="float32", cpu_kvcache_gib=0.01)
        one_block = block_bytes(config, 16, torch.float32)
        assert sized.engine.model_runner.num_blocks == int(0.01 * 2**30) // one_block
        assert sized.engine.config.num_kvcache_blocks == sized.engine.model_runner.num_blocks


def test_a_folder_without_tokenizer_is_refused_by_name(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint("qwen3"), folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        LLM(str(folder))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "nanovllm", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_cli_generates_from_a_random_tiny_checkpoint(tmp_path):
    folder = tmp_path / "tiny"
    written = cli("random-checkpoint", str(folder), "--preset", "tiny", "--dtype", "float32")
    assert written.returncode == 0, written.stderr
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    result = cli("generate", "--model", str(folder), "--device", "cpu", "--temperature", "0",
                 "--max-tokens", "5", "--ignore-eos", "Hello")
    assert result.returncode == 0, result.stderr
    llm = LLM(str(folder), device="cpu")
    (expected,) = llm.generate("Hello", SamplingParams(temperature=0, max_tokens=5,
                                                       ignore_eos=True), use_tqdm=False)
    assert result.stdout == expected.text + "\n"
    several = cli("generate", "--model", str(folder), "--device", "cpu", "--max-tokens", "3",
                  "--seed", "1", "a", "b")
    assert several.returncode == 0 and several.stdout.count("(length)") == 2, several.stderr
    bad = cli("generate", "--model", str(folder), "--top-p", "1.5", "x")
    assert bad.returncode != 0 and "top_p" in bad.stderr


def test_close_gives_the_memory_back_and_later_calls_fail_clearly():
    with LLM(str(tiny_checkpoint("qwen3")), dtype="float32") as closing:
        closing.generate(["a"], SamplingParams(max_tokens=2), use_tqdm=False)
    runner = closing.engine.model_runner
    assert runner.model is None and runner.kv_cache is None and runner.graphs is None
    with pytest.raises(RuntimeError, match="the engine was closed"):
        closing.generate(["a"], SamplingParams(max_tokens=2), use_tqdm=False)
