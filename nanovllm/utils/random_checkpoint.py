"""Write a randomly initialised Hugging Face-format checkpoint of any Qwen3-style configuration.

Tests and benchmarks need real-size models, and downloading one is not allowed (and
not needed: speed does not depend on what the weights say). This writes a complete
folder, ``config.json`` + ``*.safetensors`` + a byte-level ``tokenizer.json``, that
both this engine and ``transformers`` can load. Matrices are drawn from N(0, std);
RMSNorm gains are drawn near one rather than set to exactly one, so that a loader that
forgot to load them would be caught by a parity test.

The ``qwen3-0.6b`` preset is the configuration published for Qwen/Qwen3-0.6B on its
Hugging Face model card (config.json), with the special-token ids moved to those of
the byte-level tokenizer.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from nanovllm.models.model_config import ModelConfig
from nanovllm.utils.byte_tokenizer import write_byte_tokenizer

PRESETS = {
    "qwen3-0.6b": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=1024,
        num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
        intermediate_size=3072, vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, max_position_embeddings=40960, hidden_act="silu",
        attention_bias=False),
    "tiny": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        intermediate_size=128, vocab_size=320, rope_theta=10000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False, max_position_embeddings=1024, hidden_act="silu",
        attention_bias=False),
}


def checkpoint_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a Hugging Face checkpoint of this configuration holds, with its shape."""
    hidden, head_dim, inter = config.hidden_size, config.head_dim, config.intermediate_size
    q_size = config.num_attention_heads * head_dim
    kv_size = config.num_key_value_heads * head_dim
    shapes = {"model.embed_tokens.weight": (config.vocab_size, hidden),
              "model.norm.weight": (hidden,)}
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        shapes[layer + "input_layernorm.weight"] = (hidden,)
        shapes[layer + "post_attention_layernorm.weight"] = (hidden,)
        for name, size in (("q_proj", q_size), ("k_proj", kv_size), ("v_proj", kv_size)):
            shapes[layer + f"self_attn.{name}.weight"] = (size, hidden)
            if config.qkv_bias:
                shapes[layer + f"self_attn.{name}.bias"] = (size,)
        shapes[layer + "self_attn.o_proj.weight"] = (hidden, q_size)
        if config.qk_norm:
            shapes[layer + "self_attn.q_norm.weight"] = (head_dim,)
            shapes[layer + "self_attn.k_norm.weight"] = (head_dim,)
        shapes[layer + "mlp.gate_proj.weight"] = (inter, hidden)
        shapes[layer + "mlp.up_proj.weight"] = (inter, hidden)
        shapes[layer + "mlp.down_proj.weight"] = (hidden, inter)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, hidden)
    return shapes


def random_tensor(name: str, shape: tuple[int, ...], std: float,
                  generator: torch.Generator) -> torch.Tensor:
    values = torch.randn(shape, generator=generator)
    if name.endswith("norm.weight"):
        return 1.0 + 0.1 * values
    return std * values


def write_random_checkpoint(folder: str | Path, hf_config: dict, dtype: str = "bfloat16",
                            seed: int = 0, std: float = 0.02,
                            max_shard_bytes: int = 2 << 30) -> Path:
    """Write config.json, the weights (split into shards of at most max_shard_bytes) and a tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special_ids = write_byte_tokenizer(folder)
    hf_config = {**hf_config, "torch_dtype": dtype, "bos_token_id": special_ids["<|endoftext|>"],
                 "eos_token_id": special_ids["<|im_end|>"]}
    config = ModelConfig.from_dict(hf_config, source="random checkpoint configuration")
    if config.vocab_size < len(special_ids) + 256:
        raise ValueError(f"vocab_size must be at least 259 for the byte tokenizer, "
                         f"got {config.vocab_size}")
    (folder / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")

    generator = torch.Generator().manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    shards: list[dict[str, torch.Tensor]] = [{}]
    shard_bytes = 0
    for name, shape in checkpoint_shapes(config).items():
        tensor = random_tensor(name, shape, std, generator).to(torch_dtype)
        size = tensor.numel() * tensor.element_size()
        if shards[-1] and shard_bytes + size > max_shard_bytes:
            shards.append({})
            shard_bytes = 0
        shards[-1][name] = tensor
        shard_bytes += size
    if len(shards) == 1:
        save_file(shards[0], str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        file_name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / file_name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file_name))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder
