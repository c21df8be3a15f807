"""Fill a model's parameters from the ``*.safetensors`` files of a Hugging Face folder.

Checkpoint names follow the Hugging Face module tree (``model.layers.3.self_attn.q_proj.weight``),
which our model mirrors, except where we merged projections: q/k/v live in one
``qkv_proj`` and gate/up in one ``gate_up_proj``. The model's ``packed_modules_mapping``
says where each separate tensor lands, and each parameter's ``weight_loader`` copies it
into the right rows (and, with tensor parallelism, keeps only this GPU's share).

Loading is strict, because a silently half-loaded model produces fluent nonsense: an
unknown tensor, a shape mismatch, a parameter no file provides, a file that is not
safetensors (empty, truncated, garbage), or a weight that is NaN or infinite is an error
that names the file, the tensor and what was expected. Nothing here touches the network.

Weight loaders get a ``CheckpointTensor``: the tensor's shape, not yet its values. They
index it for the part their GPU keeps, and only that part is read from the file. So
with tensor parallelism each GPU reads its own share and never holds a whole matrix
it does not need; ``load_model`` returns the bytes it read, which tests check.

Non-finite weights are caught after loading, on each parameter where it lives: one
reading pass over what this rank read, and one synchronisation for the whole model.
A single NaN would otherwise turn every logit into NaN, and the model would "generate"
token 0 forever. Only when a parameter fails are its parts read again, to name the tensor.
"""

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn


class CheckpointTensor:
    """A tensor in a safetensors file, read only where it is indexed (``t[a:b]``, ``t[:, a:b]``)."""

    def __init__(self, file_slice):
        self.file_slice = file_slice
        self.shape = torch.Size(file_slice.get_shape())
        self.bytes_read = 0
        self.indices = []  # where it was read, to read the same parts again

    def __getitem__(self, index) -> torch.Tensor:
        part = self.file_slice[index]
        self.bytes_read += part.numel() * part.element_size()
        self.indices.append(index)
        return part


def default_weight_loader(param: nn.Parameter, loaded, shard_id=None) -> None:
    if tuple(param.shape) != tuple(loaded.shape):
        raise ValueError(f"expected shape {tuple(param.shape)}, got {tuple(loaded.shape)}")
    param.data.copy_(loaded[:])


def checkpoint_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: model folder not found")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors weight files in the model folder")
    return files


def open_checkpoint(path: Path):
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a valid safetensors file ({error})") from None


def target_of(name: str, mapping: dict) -> tuple[str, object]:
    """Our parameter name for a checkpoint tensor name, and the shard it fills (or None)."""
    for part, (merged, shard_id) in mapping.items():
        if f".{part}." in name:
            return name.replace(f".{part}.", f".{merged}."), shard_id
    return name, None


def expected_names(params: dict, mapping: dict) -> list[str]:
    """The checkpoint tensor names that together fill every parameter."""
    parts_by_merged: dict[str, list[str]] = {}
    for part, (merged, _) in mapping.items():
        parts_by_merged.setdefault(merged, []).append(part)
    names = []
    for name in params:
        merged = next((m for m in parts_by_merged if f".{m}." in name), None)
        if merged is None:
            names.append(name)
        else:
            names += [name.replace(f".{merged}.", f".{part}.") for part in parts_by_merged[merged]]
    return names


def load_model(model: nn.Module, folder: str | Path) -> int:
    """Fill every parameter from the folder's weight files; returns the bytes read."""
    files = checkpoint_files(folder)
    params = dict(model.named_parameters())  # a tied weight appears once, under its first name
    mapping = getattr(model, "packed_modules_mapping", {})
    tied = getattr(model.config, "tie_word_embeddings", False)
    loaded_names: set[str] = set()
    sources: dict[str, list] = {}  # parameter -> (file, tensor name, parts read) that filled it
    bytes_read = 0
    for path in files:
        with open_checkpoint(path) as file:
            for name in file.keys():
                if name.endswith("rotary_emb.inv_freq"):  # a cached buffer, recomputed here
                    continue
                if tied and name == "lm_head.weight":  # the same matrix as the embedding
                    continue
                target, shard_id = target_of(name, mapping)
                if target not in params:
                    raise ValueError(f"{path}: unexpected tensor {name!r}; this model "
                                     f"({model.config.architecture}) has no such weight")
                param = params[target]
                loader = getattr(param, "weight_loader", default_weight_loader)
                tensor = CheckpointTensor(file.get_slice(name))
                try:
                    loader(param, tensor, shard_id)
                except ValueError as error:
                    raise ValueError(f"{path}: tensor {name!r}: {error}") from None
                bytes_read += tensor.bytes_read
                loaded_names.add(name)
                sources.setdefault(target, []).append((path, name, tensor.indices))
    missing = [name for name in expected_names(params, mapping) if name not in loaded_names]
    if missing:
        raise ValueError(f"{folder}: the checkpoint lacks {len(missing)} expected tensor(s), "
                         f"e.g. {missing[:3]}")
    refuse_non_finite(params, sources)
    return bytes_read


@torch.no_grad()
def refuse_non_finite(params: dict, sources: dict) -> None:
    """ValueError naming the tensor if any loaded parameter holds a NaN or an infinity.

    A parameter's smallest and largest values are finite exactly when all its values are
    (``aminmax`` propagates NaN): one reading pass, no temporary as large as the parameter.
    """
    extremes = torch.stack([torch.stack(torch.aminmax(p)).float() for p in params.values()])
    finite = torch.isfinite(extremes).all(dim=1).tolist()  # the one synchronisation
    for (target, param), ok in zip(params.items(), finite, strict=True):
        if not ok:
            raise non_finite_error(target, param.dtype, sources[target])


def non_finite_error(target: str, dtype: torch.dtype, sources: list) -> ValueError:
    """Which checkpoint tensor made a parameter non-finite: one that holds NaN or Inf
    itself, or one whose values overflow the dtype the model is loaded in."""
    for path, name, indices in sources:
        with open_checkpoint(path) as file:
            parts = [file.get_slice(name)[index] for index in indices]
        if not all(torch.isfinite(part).all() for part in parts):
            return ValueError(f"{path}: tensor {name!r} holds NaN or infinite values; "
                              f"every weight must be a finite number")
        if not all(torch.isfinite(part.to(dtype)).all() for part in parts):
            largest = max(part.abs().max().item() for part in parts)
            return ValueError(f"{path}: tensor {name!r} holds values up to {largest:.4g}, "
                              f"beyond the range of {str(dtype).removeprefix('torch.')}; "
                              f"load the model in float32 or bfloat16")
    return ValueError(f"parameter {target!r} holds NaN or infinite values after loading")
