"""Loading a Hugging Face folder: what loads, and the errors for folders that cannot."""

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from nanovllm.engine.model_runner import default_dtype
from nanovllm.layers.linear import Shard
from nanovllm.models.model_config import ModelConfig
from nanovllm.models.qwen3 import Qwen3ForCausalLM
from nanovllm.utils.loader import load_model
from nanovllm.utils.random_checkpoint import PRESETS, checkpoint_shapes
from tests.engine.model_fixtures import tiny_checkpoint


def copy_of(variant, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint(variant), folder)
    return folder


def load(folder, dtype=torch.float32, rank=0, size=1):
    with default_dtype(dtype):
        model = Qwen3ForCausalLM(ModelConfig.from_folder(folder), Shard(rank, size))
    load_model(model, folder)
    return model


def file_holding(folder, name):
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return folder / index["weight_map"][name]


@pytest.mark.parametrize("variant", ["qwen3", "qwen3-tied", "qwen2", "llama"])
def test_every_checkpoint_tensor_lands_in_the_model(variant):
    folder = tiny_checkpoint(variant)
    config = ModelConfig.from_folder(folder)
    model = load(folder)
    k_name = "model.layers.1.self_attn.k_proj.weight"
    k_proj = load_file(file_holding(folder, k_name))[k_name]
    # the merged QKV matrix holds q, then k, then v
    q_size = config.num_attention_heads * config.head_dim
    kv_size = config.num_key_value_heads * config.head_dim
    merged = model.model.layers[1].self_attn.qkv_proj.weight
    assert torch.equal(merged[q_size:q_size + kv_size], k_proj)
    if config.tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    assert (model.model.layers[0].self_attn.q_norm is not None) == config.qk_norm
    # only normalised queries may meet an 8-bit cache in float16 products
    assert all(layer.self_attn.attn.normalised_queries == config.qk_norm
               for layer in model.model.layers)
    assert (model.model.layers[0].self_attn.qkv_proj.bias is not None) == config.qkv_bias


def test_config_switches_per_architecture():
    assert ModelConfig.from_folder(tiny_checkpoint("qwen3")).qk_norm
    qwen2 = ModelConfig.from_folder(tiny_checkpoint("qwen2"))
    assert qwen2.qkv_bias and not qwen2.qk_norm
    llama = ModelConfig.from_folder(tiny_checkpoint("llama"))
    assert not llama.qkv_bias and not llama.qk_norm


def test_published_qwen3_0_6b_configuration_has_the_expected_size():
    config = ModelConfig.from_dict(PRESETS["qwen3-0.6b"])
    parameters = sum(torch.Size(s).numel() for s in checkpoint_shapes(config).values())
    assert 596_000_000 < parameters < 597_000_000  # "0.6B", embeddings tied


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ModelConfig.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_model(torch.nn.Linear(1, 1), tmp_path / "nowhere")


def test_unsupported_architecture_is_named(tmp_path):
    folder = copy_of("qwen3", tmp_path)
    raw = json.loads((folder / "config.json").read_text())
    raw["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"config.json: architecture 'GPT2LMHeadModel' is not "
                                         r"supported; expected one of"):
        ModelConfig.from_folder(folder)


@pytest.mark.parametrize("key, value, message", [
    ("rope_scaling", {"rope_type": "yarn", "factor": 4.0}, "rope type 'yarn'"),
    ("use_sliding_window", True, "use_sliding_window"),
    ("hidden_act", "gelu", r'hidden_act must be "silu" \(nothing else is supported\), '
                           r'got "gelu"'),
    ("num_key_value_heads", 3, "multiple of num_key_value_heads"),
    ("hidden_size", 0, "hidden_size must be a positive integer"),
])
def test_configurations_the_decoder_cannot_express_are_refused(key, value, message):
    raw = {**PRESETS["tiny"], key: value}
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(raw)


def test_no_weight_files(tmp_path):
    folder = copy_of("qwen3", tmp_path)
    for path in folder.glob("*.safetensors"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors weight files"):
        load(folder)


def test_shape_mismatch_names_file_tensor_and_expected_shape(tmp_path):
    folder = copy_of("qwen3", tmp_path)
    name = "model.layers.0.mlp.up_proj.weight"
    path = file_holding(folder, name)
    tensors = load_file(path)
    tensors[name] = tensors[name][:, :-1].contiguous()
    save_file(tensors, path)
    with pytest.raises(ValueError, match=rf"{path.name}: tensor '{name}': expected shape "
                                         r"\(128, 64\), got \(128, 63\)"):
        load(folder)


def test_missing_tensor_is_named(tmp_path):
    folder = copy_of("qwen3", tmp_path)
    name = "model.layers.1.self_attn.v_proj.weight"
    path = file_holding(folder, name)
    tensors = load_file(path)
    del tensors[name]
    save_file(tensors, path)
    with pytest.raises(ValueError, match=rf"lacks 1 expected tensor\(s\), e.g. \['{name}'\]"):
        load(folder)


def test_unexpected_tensor_is_named(tmp_path):
    folder = copy_of("qwen3", tmp_path)
    save_file({"model.layers.0.mlp.extra.weight": torch.zeros(2)}, folder / "extra.safetensors")
    with pytest.raises(ValueError, match=r"extra.safetensors: unexpected tensor "
                                         r"'model.layers.0.mlp.extra.weight'"):
        load(folder)


def set_weight(folder, name, index, value):
    """Write one value into a checkpoint tensor; returns the file that holds it."""
    path = file_holding(folder, name)
    tensors = load_file(path)
    tensors[name][index] = value
    save_file(tensors, path)
    return path


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_nan_weight_is_refused_whatever_the_dtype(tmp_path, dtype):
    folder = copy_of("qwen3", tmp_path)
    name = "model.layers.1.mlp.gate_proj.weight"
    path = set_weight(folder, name, (3, 4), float("nan"))
    with pytest.raises(ValueError) as caught:
        load(folder, dtype)
    assert str(caught.value) == (f"{path}: tensor '{name}' holds NaN or infinite values; "
                                 f"every weight must be a finite number")


def test_each_rank_checks_the_part_it_reads(tmp_path):
    """q_proj rows 32-63 (query heads 2-3) belong to rank 1 of 2; only rank 1 sees the NaN."""
    folder = copy_of("qwen3", tmp_path)
    name = "model.layers.0.self_attn.q_proj.weight"
    path = set_weight(folder, name, (40, 0), float("nan"))
    load(folder, rank=0, size=2)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: tensor '{name}' holds NaN"):
        load(folder, rank=1, size=2)


def test_a_weight_too_large_for_the_dtype_is_refused(tmp_path):
    """1e6 is a finite float32, but infinite in float16: the loaded model would be."""
    folder = copy_of("qwen3", tmp_path)
    name = "model.layers.0.mlp.down_proj.weight"
    path = set_weight(folder, name, (0, 0), 1e6)
    load(folder, torch.float32)
    with pytest.raises(ValueError) as caught:
        load(folder, torch.float16)
    assert str(caught.value) == (f"{path}: tensor '{name}' holds values up to 1e+06, beyond the "
                                 f"range of float16; load the model in float32 or bfloat16")
