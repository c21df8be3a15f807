"""The shape of a model, read from a Hugging Face ``config.json``.

Qwen3, Qwen2 and Llama are one decoder with three switches: Qwen3 normalises each
head's queries and keys (q/k norm), Qwen2 adds a bias to the QKV projection, Llama
has neither. Everything else (RMSNorm, rotary embeddings, grouped-query attention,
a SiLU-gated MLP) is shared, so one ``ModelConfig`` and one model class serve all
three. Anything the decoder cannot express (sliding windows, rotary scaling, other
activations) is refused here, by name, instead of producing wrong numbers later.
"""

import json
from dataclasses import dataclass
from pathlib import Path

# architecture name -> does it normalise q and k per head?
QK_NORM_BY_ARCHITECTURE = {
    "Qwen3ForCausalLM": True,
    "Qwen2ForCausalLM": False,
    "LlamaForCausalLM": False,
}
ARCHITECTURE_BY_MODEL_TYPE = {"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM",
                              "llama": "LlamaForCausalLM"}


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool
    qk_norm: bool
    torch_dtype: str = "float32"
    eos_token_id: int | None = None
    bos_token_id: int | None = None

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ModelConfig":
        path = Path(folder) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; a model folder needs config.json")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config.json") -> "ModelConfig":
        def fail(message: str) -> ValueError:
            return ValueError(f"{source}: {message}")

        architectures = raw.get("architectures") or [
            ARCHITECTURE_BY_MODEL_TYPE.get(raw.get("model_type", ""), "")]
        architecture = architectures[0]
        if architecture not in QK_NORM_BY_ARCHITECTURE:
            raise fail(f"architecture {architecture or raw.get('model_type')!r} is not supported; "
                       f"expected one of {sorted(QK_NORM_BY_ARCHITECTURE)}")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads"):
            if not isinstance(raw.get(key), int) or raw[key] <= 0:
                raise fail(f"{key} must be a positive integer, got {raw.get(key)!r}")
        if raw.get("hidden_act", "silu") != "silu":
            raise fail(f"hidden_act {raw['hidden_act']!r} is not supported; expected 'silu'")
        if raw.get("use_sliding_window"):
            raise fail("use_sliding_window=true is not supported; expected false")
        if raw.get("mlp_bias"):
            raise fail("mlp_bias=true is not supported; expected false")
        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise fail(f"rope type {rope_type!r} is not supported; expected 'default' (no scaling)")
        num_heads = raw["num_attention_heads"]
        num_kv_heads = raw.get("num_key_value_heads") or num_heads
        if num_heads % num_kv_heads:
            raise fail(f"num_attention_heads ({num_heads}) must be a multiple of "
                       f"num_key_value_heads ({num_kv_heads})")
        qkv_bias = raw.get("attention_bias", architecture == "Qwen2ForCausalLM")
        eos = raw.get("eos_token_id")
        return cls(
            architecture=architecture,
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads,
            head_dim=raw.get("head_dim") or raw["hidden_size"] // num_heads,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(raw.get("rope_theta") or rope.get("rope_theta") or 10000.0),
            max_position_embeddings=int(raw.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            qkv_bias=bool(qkv_bias),
            qk_norm=QK_NORM_BY_ARCHITECTURE[architecture],
            torch_dtype=str(raw.get("dtype") or raw.get("torch_dtype") or "float32"),
            eos_token_id=eos[0] if isinstance(eos, list) and eos else eos,
            bos_token_id=raw.get("bos_token_id"),
        )
