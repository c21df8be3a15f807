"""The shape of a model, read from a Hugging Face ``config.json``.

Qwen3, Qwen2 and Llama are one decoder with three switches: Qwen3 normalises each
head's queries and keys (q/k norm), Qwen2 adds a bias to the QKV projection, Llama
has neither. Everything else (RMSNorm, rotary embeddings, grouped-query attention,
a SiLU-gated MLP) is shared, so one ``ModelConfig`` and one model class serve all
three. Anything the decoder cannot express (sliding windows, rotary scaling, other
activations) is refused here, by name, instead of producing wrong numbers later.

Every setting is checked for its kind too (``"head_dim": "16"``, ``64.5``, ``true``, ``-1``
are refused), because a wrong kind otherwise surfaces as a library traceback deep in
model building, far from the file and field that caused it. One helper, ``setting``,
reads a field and names the file, the field, what is allowed and what was found.
"""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from nanovllm.config import is_int, is_real

# architecture name -> does it normalise q and k per head?
QK_NORM_BY_ARCHITECTURE = {
    "Qwen3ForCausalLM": True,
    "Qwen2ForCausalLM": False,
    "LlamaForCausalLM": False,
}
ARCHITECTURE_BY_MODEL_TYPE = {"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM",
                              "llama": "LlamaForCausalLM"}


class Kind(NamedTuple):
    """What a setting may hold: a test, and the words an error uses for it."""

    test: Callable[[object], bool]
    allowed: str


POSITIVE_INT = Kind(lambda v: is_int(v) and v > 0, "a positive integer")
POSITIVE_NUMBER = Kind(lambda v: is_real(v) and v > 0, "a positive number")
BOOL = Kind(lambda v: isinstance(v, bool), "true or false")
TEXT = Kind(lambda v: isinstance(v, str), "a string")
OBJECT = Kind(lambda v: isinstance(v, dict), "a JSON object")
NAMES = Kind(lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
             "a list of strings")


def token_ids(vocab_size: int) -> Kind:
    """A token id, or a list of them (Hugging Face allows several end-of-sequence ids)."""
    return Kind(lambda v: all(is_int(t) and 0 <= t < vocab_size
                              for t in (v if isinstance(v, list) else [v])),
                f"a token id in [0, {vocab_size}) or a list of them")


def only(value) -> Kind:
    """The one value of a setting that this decoder implements."""
    return Kind(lambda v: type(v) is type(value) and v == value,
                f"{json_text(value)} (nothing else is supported)")


# settings that select something the decoder does not implement, and the value it needs
ONLY_SUPPORTED = {"hidden_act": "silu", "use_sliding_window": False, "mlp_bias": False}
REQUIRED = object()


def setting(raw: dict, source: str, key: str, kind: Kind, default=REQUIRED):
    """``raw[key]`` if it is of the kind, ``default`` if it is absent or null; else ValueError."""
    value = raw.get(key)
    if value is None and default is not REQUIRED:
        return default
    if key not in raw:
        raise ValueError(f"{source}: {key} is missing; it must be {kind.allowed}")
    if not kind.test(value):
        raise ValueError(f"{source}: {key} must be {kind.allowed}, got {json_text(value)}")
    return value


def json_text(value) -> str:
    """A value as JSON (as it is written in the file), cut short if long."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def json_type(value) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def read_json_object(path: Path) -> dict:
    """The JSON object a settings file holds; ValueError naming the file if it holds anything else."""
    try:
        value = json.loads(path.read_bytes())
    except ValueError as error:  # not JSON, or not UTF-8 text
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {json_type(value)}")
    return value


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
        return cls.from_dict(read_json_object(path), source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config.json") -> "ModelConfig":
        """The fields this decoder reads, each checked for its kind (``source`` names the file
        in errors); a setting that selects something it cannot do is refused."""
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a JSON object, got {json_type(raw)}")
        get = functools.partial(setting, raw, source)
        architecture = read_architecture(get, source)
        for key, value in ONLY_SUPPORTED.items():
            get(key, only(value), value)
        rope = read_rope(get, source)
        vocab_size, hidden_size, num_heads = (
            get(key, POSITIVE_INT) for key in ("vocab_size", "hidden_size", "num_attention_heads"))
        num_kv_heads = get("num_key_value_heads", POSITIVE_INT, num_heads)
        head_dim = get("head_dim", POSITIVE_INT, None)
        check_heads(source, hidden_size, num_heads, num_kv_heads, head_dim)
        rope_theta = get("rope_theta", POSITIVE_NUMBER, None) or setting(
            rope, f"{source}: rope_parameters", "rope_theta", POSITIVE_NUMBER, 10000.0)
        return cls(
            architecture=architecture,
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=get("intermediate_size", POSITIVE_INT),
            num_hidden_layers=get("num_hidden_layers", POSITIVE_INT),
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads,
            head_dim=head_dim or hidden_size // num_heads,
            rms_norm_eps=float(get("rms_norm_eps", POSITIVE_NUMBER, 1e-6)),
            rope_theta=float(rope_theta),
            max_position_embeddings=get("max_position_embeddings", POSITIVE_INT, 4096),
            tie_word_embeddings=get("tie_word_embeddings", BOOL, False),
            qkv_bias=get("attention_bias", BOOL, architecture == "Qwen2ForCausalLM"),
            qk_norm=QK_NORM_BY_ARCHITECTURE[architecture],
            torch_dtype=get("dtype", TEXT, None) or get("torch_dtype", TEXT, "float32"),
            eos_token_id=first(get("eos_token_id", token_ids(vocab_size), None)),
            bos_token_id=first(get("bos_token_id", token_ids(vocab_size), None)),
        )


def read_architecture(get, source: str) -> str:
    architectures, model_type = get("architectures", NAMES, []), get("model_type", TEXT, "")
    architecture = (architectures[0] if architectures
                    else ARCHITECTURE_BY_MODEL_TYPE.get(model_type, ""))
    if architecture not in QK_NORM_BY_ARCHITECTURE:
        raise ValueError(f"{source}: architecture {architecture or model_type or None!r} is not "
                         f"supported; expected one of {sorted(QK_NORM_BY_ARCHITECTURE)}")
    return architecture


def read_rope(get, source: str) -> dict:
    """The rotary settings; scaled variants (YaRN, Llama 3's) change the angles: refused."""
    rope = get("rope_parameters", OBJECT, {}) or get("rope_scaling", OBJECT, {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"{source}: rope type {rope_type!r} is not supported; expected "
                         f"'default' (no scaling)")
    return rope


def check_heads(source: str, hidden_size: int, num_heads: int, num_kv_heads: int,
                head_dim: int | None) -> None:
    if num_heads % num_kv_heads:
        raise ValueError(f"{source}: num_attention_heads ({num_heads}) must be a multiple of "
                         f"num_key_value_heads ({num_kv_heads})")
    if head_dim is None and hidden_size % num_heads:
        raise ValueError(f"{source}: hidden_size ({hidden_size}) must be a multiple of "
                         f"num_attention_heads ({num_heads}) when head_dim is not given")


def first(ids: int | list[int] | None) -> int | None:
    """The engine stops on one end-of-sequence id; of a list, it takes the first."""
    return (ids[0] if ids else None) if isinstance(ids, list) else ids
