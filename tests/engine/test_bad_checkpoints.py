"""A model folder with one bad file or field: each is refused with a message naming the
file, the field or tensor, and what is allowed, both by ``LLM(folder)`` and by the CLI.

Every row starts from a copy of the bundled model, which loads, and breaks one thing.
Where the message quotes a library's own words (why safetensors or tokenizers could not
read a file), the row writes ``<library text>`` for them; the rest is matched exactly.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from nanovllm.llm import LLM

REPO = Path(__file__).parents[2]
BUNDLED = REPO / "nanovllm" / "data" / "tiny-shakespeare"
LIBRARY_TEXT = "<library text>"


def good_folder(tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(BUNDLED, folder)
    return folder


def write(name, content):
    def corrupt(folder):
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return corrupt


def truncate(name, keep: int | float):
    """Keep the first ``keep`` bytes (an int) or that fraction of the file (a float)."""
    def corrupt(folder):
        path = folder / name
        data = path.read_bytes()
        path.write_bytes(data[:keep if isinstance(keep, int) else int(len(data) * keep)])
    return corrupt


def remove(name):
    return lambda folder: (folder / name).unlink()


def set_field(name, key, value):
    """Set (or, for value=DELETE, remove) one top-level field of a JSON file."""
    def corrupt(folder):
        path = folder / name
        raw = json.loads(path.read_text())
        if value is DELETE:
            del raw[key]
        else:
            raw[key] = value
        path.write_text(json.dumps(raw))
    return corrupt


DELETE = object()


def set_weight(tensor, index, value):
    def corrupt(folder):
        path = folder / "model.safetensors"
        tensors = load_file(path)
        tensors[tensor][index] = value
        save_file(tensors, path)
    return corrupt


def config(key, value):
    return set_field("config.json", key, value)


def tokenizer_config(key, value):
    return set_field("tokenizer_config.json", key, value)


W, C = "{folder}/model.safetensors", "{folder}/config.json"
T, TC = "{folder}/tokenizer.json", "{folder}/tokenizer_config.json"
UNREADABLE_TOKENIZER = f"{T}: not a tokenizer the tokenizers library can read ({LIBRARY_TEXT})"
NOT_SAFETENSORS = f"{W}: not a valid safetensors file ({LIBRARY_TEXT})"
TOKEN_IDS = "a token id in [0, 4096) or a list of them"
SPECIAL_TOKEN = 'a string or {"content": string}'

ROWS = {  # id: (corruption, exception type, message; {folder} is the model folder)
    # the weights
    "weights empty": (write("model.safetensors", b""), ValueError, NOT_SAFETENSORS),
    "weights truncated": (truncate("model.safetensors", 0.5), ValueError, NOT_SAFETENSORS),
    "weights cut in the header": (truncate("model.safetensors", 100), ValueError,
                                  NOT_SAFETENSORS),
    "weights garbage": (write("model.safetensors", bytes(range(256)) * 64), ValueError,
                        NOT_SAFETENSORS),
    "weights text": (write("model.safetensors", "not weights at all\n"), ValueError,
                     NOT_SAFETENSORS),
    "weights NaN": (set_weight("model.layers.3.mlp.down_proj.weight", (5, 7), float("nan")),
                    ValueError, f"{W}: tensor 'model.layers.3.mlp.down_proj.weight' holds NaN "
                                "or infinite values; every weight must be a finite number"),
    "weights +Inf in a merged matrix": (
        set_weight("model.layers.0.self_attn.v_proj.weight", (0, 0), float("inf")), ValueError,
        f"{W}: tensor 'model.layers.0.self_attn.v_proj.weight' holds NaN or infinite values; "
        "every weight must be a finite number"),
    "weights -Inf in a norm": (
        set_weight("model.norm.weight", 3, float("-inf")), ValueError,
        f"{W}: tensor 'model.norm.weight' holds NaN or infinite values; every weight must be "
        "a finite number"),
    # config.json
    "config missing": (remove("config.json"), FileNotFoundError,
                       f"{C}: not found; a model folder needs config.json"),
    "config not JSON": (write("config.json", "{"), ValueError,
                        f"{C}: not valid JSON (Expecting property name enclosed in double "
                        "quotes: line 1 column 2 (char 1))"),
    "config not UTF-8": (write("config.json", b"\xff\xfe\x00"), ValueError,
                         f"{C}: not valid JSON ({LIBRARY_TEXT})"),
    "config a list": (write("config.json", "[1, 2]"), ValueError,
                      f"{C}: expected a JSON object, got an array"),
    "config a string": (write("config.json", '"qwen3"'), ValueError,
                        f"{C}: expected a JSON object, got a string"),
    "config a number": (write("config.json", "3"), ValueError,
                        f"{C}: expected a JSON object, got a number"),
    "head_dim a string": (config("head_dim", "16"), ValueError,
                          f'{C}: head_dim must be a positive integer, got "16"'),
    "hidden_size a float": (config("hidden_size", 64.5), ValueError,
                            f"{C}: hidden_size must be a positive integer, got 64.5"),
    "num_hidden_layers a bool": (config("num_hidden_layers", True), ValueError,
                                 f"{C}: num_hidden_layers must be a positive integer, got true"),
    "intermediate_size negative": (config("intermediate_size", -768), ValueError,
                                   f"{C}: intermediate_size must be a positive integer, "
                                   "got -768"),
    "vocab_size missing": (config("vocab_size", DELETE), ValueError,
                           f"{C}: vocab_size is missing; it must be a positive integer"),
    "num_attention_heads null": (config("num_attention_heads", None), ValueError,
                                 f"{C}: num_attention_heads must be a positive integer, "
                                 "got null"),
    "num_key_value_heads 0": (config("num_key_value_heads", 0), ValueError,
                              f"{C}: num_key_value_heads must be a positive integer, got 0"),
    "num_key_value_heads a string": (config("num_key_value_heads", "2"), ValueError,
                                     f'{C}: num_key_value_heads must be a positive integer, '
                                     'got "2"'),
    "num_key_value_heads no divisor": (config("num_key_value_heads", 3), ValueError,
                                       f"{C}: num_attention_heads (4) must be a multiple of "
                                       "num_key_value_heads (3)"),
    "max_position_embeddings 0": (config("max_position_embeddings", 0), ValueError,
                                  f"{C}: max_position_embeddings must be a positive integer, "
                                  "got 0"),
    "max_position_embeddings a string": (config("max_position_embeddings", "2048"), ValueError,
                                         f'{C}: max_position_embeddings must be a positive '
                                         'integer, got "2048"'),
    "rms_norm_eps a string": (config("rms_norm_eps", "1e-6"), ValueError,
                              f'{C}: rms_norm_eps must be a positive number, got "1e-6"'),
    "rms_norm_eps negative": (config("rms_norm_eps", -1e-6), ValueError,
                              f"{C}: rms_norm_eps must be a positive number, got -1e-06"),
    "rope_theta NaN": (config("rope_theta", float("nan")), ValueError,
                       f"{C}: rope_theta must be a positive number, got NaN"),
    "rope_parameters a string": (config("rope_parameters", "default"), ValueError,
                                 f'{C}: rope_parameters must be a JSON object, got "default"'),
    "eos_token_id a string": (config("eos_token_id", "0"), ValueError,
                              f'{C}: eos_token_id must be {TOKEN_IDS}, got "0"'),
    "eos_token_id outside the vocabulary": (config("eos_token_id", 4096), ValueError,
                                            f"{C}: eos_token_id must be {TOKEN_IDS}, got 4096"),
    "tie_word_embeddings a string": (config("tie_word_embeddings", "true"), ValueError,
                                     f'{C}: tie_word_embeddings must be true or false, '
                                     'got "true"'),
    "tie_word_embeddings a number": (config("tie_word_embeddings", 1), ValueError,
                                     f"{C}: tie_word_embeddings must be true or false, got 1"),
    "architectures a string": (config("architectures", "Qwen3ForCausalLM"), ValueError,
                               f'{C}: architectures must be a list of strings, '
                               'got "Qwen3ForCausalLM"'),
    "hidden_act unsupported": (config("hidden_act", "gelu"), ValueError,
                               f'{C}: hidden_act must be "silu" (nothing else is supported), '
                               'got "gelu"'),
    "use_sliding_window a string": (config("use_sliding_window", "false"), ValueError,
                                    f"{C}: use_sliding_window must be false (nothing else is "
                                    'supported), got "false"'),
    "dtype a number": (config("dtype", 32), ValueError, f"{C}: dtype must be a string, got 32"),
    # tokenizer.json
    "tokenizer missing": (remove("tokenizer.json"), FileNotFoundError,
                          f"{T}: not found; a model folder needs tokenizer.json"),
    "tokenizer garbage": (write("tokenizer.json", bytes(range(256))), ValueError,
                          UNREADABLE_TOKENIZER),
    "tokenizer truncated": (truncate("tokenizer.json", 0.5), ValueError, UNREADABLE_TOKENIZER),
    "tokenizer empty": (write("tokenizer.json", b""), ValueError, UNREADABLE_TOKENIZER),
    "tokenizer a list": (write("tokenizer.json", "[1, 2]"), ValueError, UNREADABLE_TOKENIZER),
    "tokenizer without a model": (write("tokenizer.json", '{"version": "1.0"}'), ValueError,
                                  UNREADABLE_TOKENIZER),
    # tokenizer_config.json
    "tokenizer_config not JSON": (write("tokenizer_config.json", "eos"), ValueError,
                                  f"{TC}: not valid JSON (Expecting value: line 1 column 1 "
                                  "(char 0))"),
    "tokenizer_config a list": (write("tokenizer_config.json", "[]"), ValueError,
                                f"{TC}: expected a JSON object, got an array"),
    "eos_token a number": (tokenizer_config("eos_token", 0), ValueError,
                           f"{TC}: eos_token must be {SPECIAL_TOKEN}, got 0"),
    "eos_token content a number": (tokenizer_config("eos_token", {"content": 0}), ValueError,
                                   f'{TC}: eos_token must be {SPECIAL_TOKEN}, got {{"content": 0}}'),
    "bos_token a list": (tokenizer_config("bos_token", ["<|endoftext|>"]), ValueError,
                         f'{TC}: bos_token must be {SPECIAL_TOKEN}, got ["<|endoftext|>"]'),
}


def expected_pattern(message: str, folder: Path) -> str:
    """The row's message as an exact regular expression; library text matches any words."""
    pieces = message.replace("{folder}", str(folder)).split(LIBRARY_TEXT)
    return ".+".join(re.escape(piece) for piece in pieces)


def broken_folder(tmp_path, row_id) -> tuple[Path, type, str]:
    corrupt, error_type, message = ROWS[row_id]
    folder = good_folder(tmp_path)
    corrupt(folder)
    return folder, error_type, expected_pattern(message, folder)


def test_the_unbroken_copy_loads(tmp_path):
    with LLM(str(good_folder(tmp_path)), device="cpu") as llm:
        assert llm.generate("ROMEO:", use_tqdm=False)[0].token_ids


@pytest.mark.parametrize("row_id", ROWS)
def test_a_bad_file_or_field_is_refused_by_name(tmp_path, row_id):
    folder, error_type, pattern = broken_folder(tmp_path, row_id)
    with pytest.raises(error_type) as caught:
        LLM(str(folder), device="cpu")
    assert type(caught.value) is error_type
    assert re.fullmatch(pattern, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value)


def test_one_nan_among_the_weights_is_refused(tmp_path):
    folder = good_folder(tmp_path)
    name = "model.embed_tokens.weight"
    set_weight(name, (123, 45), float("nan"))(folder)
    with pytest.raises(ValueError) as caught:
        LLM(str(folder), device="cpu")
    assert str(caught.value) == (f"{folder}/model.safetensors: tensor '{name}' holds NaN or "
                                 f"infinite values; every weight must be a finite number")


def run_cli(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanovllm", "generate", "--model", str(folder),
                           "--device", "cpu", "--max-tokens", "4", "x"],
                          capture_output=True, text=True, timeout=120, cwd=folder.parent,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("row_id", ["weights truncated", "weights NaN", "config a list",
                                    "head_dim a string", "tokenizer garbage",
                                    "eos_token a number", "config missing"])
def test_the_cli_prints_one_error_line_and_exits_1(tmp_path, row_id):
    folder, _, pattern = broken_folder(tmp_path, row_id)
    result = run_cli(folder)
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.fullmatch(f"error: {pattern}\n", result.stderr), result.stderr
