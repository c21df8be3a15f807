"""Values computed at build time, so prose never hard-codes a number.

Syntax (MyST role)::

    Each token of Qwen3-0.6B takes {value}`kv_bytes_per_token:Qwen/Qwen3-0.6B` bytes of KV cache,
    {value}`kv_bytes_per_token:Qwen/Qwen3-0.6B|KiB` KiB.

``name:arguments|format``: ``name`` picks a function of the registry below,
``arguments`` (comma-separated) are passed to it as strings, and ``format`` is
optional: a Python format spec (``,``, ``.2f``), a binary unit (``KiB``,
``MiB``, ``GiB``: divided by 1024, 1024², 1024³), ``GB`` (divided by 10⁹, the
gigabyte of GPU datasheets) or ``billion`` (a count divided by 10⁹, for prose that says
"5.4 billion"), printed with at most one decimal. Integers print with
thousands separators by default.

An unknown name, wrong arguments or a failing computation is an error naming
the page, the role and what is known. The page is read again when a file a value
was computed from changes (a model config, an engine file).

Models are Hugging Face folders (``config.json``): ``org/name`` is looked up in
``nanobook_model_dirs`` (folders relative to the engine root, by default the folder of
``conf.py``, holding
``org/name/config.json``), and ``nanobook_models`` maps short names to folders.

More values live in their own modules: ``record:PATH,FIELD`` reads one field of a measured
record (``nanobook.record_files``); ``param_count``, ``weight_bytes``, ``decode_step``,
``prefill_step`` and ``hardware`` apply the engine's roofline to a model
(``nanobook.model_values``); ``key_collision:RECORD,QUANTITY[,BITS]`` is the chance of a false
prefix-cache key match in a pool the size of a bench record's, and ``birthday_attempts:BITS``
the random inputs tried before two share a hash; ``kv_fragmentation:POLICY,QUANTITY``
replays workload (a) under contiguous and paged KV allocation (``nanobook.fragmentation``).

Add a value by adding a function to ``VALUES`` (or, from ``conf.py``,
``nanobook_values = {"name": "module:function"}``); it takes a ``ValueContext``
and string arguments and returns a number or a string.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxRole

from .engine_source import engine_packages, engine_root, module_file
from .warnings import BookWarning

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "int8": 1}
UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "GB": 10**9, "billion": 10**9}


@dataclass
class ValueContext:
    """What a value function may use: the book's configuration, and where to note its inputs."""

    confdir: Path
    config: object
    used_files: list[Path] = field(default_factory=list)
    srcdir: Path | None = None  # the book's source folder, which holds _records/

    def note(self, path: Path) -> Path:
        self.used_files.append(path)
        return path

    def model_config(self, model: str) -> dict:
        """The ``config.json`` of a model named ``org/name`` or by a short name."""
        folders = []
        if model in self.config.nanobook_models:
            folders.append(self.confdir / self.config.nanobook_models[model])
        folders += [self.confdir / d / model for d in self.config.nanobook_model_dirs]
        for folder in folders:
            path = folder / "config.json"
            if path.is_file():
                return json.loads(self.note(path).read_text(encoding="utf-8"))
        known = sorted(self.config.nanobook_models) + sorted(
            p.parent.relative_to(self.confdir / d).as_posix()
            for d in self.config.nanobook_model_dirs
            for p in (self.confdir / d).glob("*/*/config.json"))
        raise ValueError(f"no model {model!r}; known models: {', '.join(known) or 'none'}")


def kv_bytes_per_token(ctx: ValueContext, model: str, dtype: str = "") -> int:
    """Keys and values of one token over all layers: 2 x layers x KV heads x head size x bytes."""
    cfg = ctx.model_config(model)
    dtype = dtype or cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return 2 * cfg["num_hidden_layers"] * kv_heads * head_dim * DTYPE_BYTES[dtype]


def kv_bytes(ctx: ValueContext, model: str, tokens: str, dtype: str = "") -> int:
    """Keys and values of ``tokens`` tokens (one conversation, or many added up)."""
    if not (tokens.isdigit() and int(tokens) > 0):
        raise ValueError(f"TOKENS must be a positive whole number, got {tokens!r}")
    return kv_bytes_per_token(ctx, model, dtype) * int(tokens)


def model_config_value(ctx: ValueContext, model: str, key: str) -> object:
    """One field of a model's ``config.json``."""
    cfg = ctx.model_config(model)
    if key not in cfg:
        raise ValueError(f"{model} config.json has no field {key!r}")
    return cfg[key]


def engine_default(ctx: ValueContext, field_name: str) -> object:
    """The default of a field of the engine's ``Config`` dataclass, read from its source."""
    root = engine_root(ctx.config)
    module = f"{engine_packages(ctx.config)[0]}.config"
    path = module_file(root, module)
    if path is None:
        raise ValueError(f"the engine has no module {module}")
    tree = ast.parse(ctx.note(path).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Config":
            for stmt in node.body:
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and stmt.target.id == field_name and stmt.value is not None):
                    return ast.literal_eval(stmt.value)
    raise ValueError(f"Config has no field {field_name!r} with a literal default")


def engine_constant(ctx: ValueContext, module: str, name: str) -> object:
    """A module-level constant of an engine module, read from its source: ``NAME``, or
    ``NAME.KEY`` for one entry of a dict (``DECODE_TILE.BLOCK_N``)."""
    root = engine_root(ctx.config)
    path = module_file(root, module)
    if path is None or not module.startswith(tuple(engine_packages(ctx.config))):
        raise ValueError(f"the engine has no module {module!r}")
    constant, *keys = name.split(".")
    tree = ast.parse(ctx.note(path).read_text(encoding="utf-8"))
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == constant):
            try:
                value = ast.literal_eval(stmt.value)
            except ValueError:
                raise ValueError(f"{module}.{constant} is not a literal") from None
            for key in keys:
                if not isinstance(value, dict) or key not in value:
                    known = ", ".join(map(str, value)) if isinstance(value, dict) else "none"
                    raise ValueError(f"{module}.{constant} has no key {key!r}; keys: {known}")
                value = value[key]
            return value
    raise ValueError(f"{module} has no module-level constant {constant!r}")


def engine_lines(ctx: ValueContext, path: str) -> int:
    """Lines of an engine file, or of all ``.py`` files under an engine folder."""
    target = engine_root(ctx.config) / path
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted(target.rglob("*.py"))
    else:
        raise ValueError(f"no engine file or folder {path!r}")
    return sum(len(ctx.note(f).read_text(encoding="utf-8").splitlines()) for f in files)


SECONDS_PER_YEAR = 365.25 * 24 * 3600
COLLISION_QUANTITIES = ("blocks", "any_pair", "per_lookup", "lookups_per_s", "years")


def key_collision(ctx: ValueContext, record: str, quantity: str, bits: str = "64") -> float:
    """Chance of a false key match in a prefix cache the size of a bench record's KV pool.

    The model: every block of the pool (``settings.num_kvcache_blocks``) holds a different
    prefix under a uniformly random key of ``bits`` bits. ``any_pair``: two of those keys are
    equal (the birthday bound, 1 - exp(-n(n-1) / 2^(bits+1))). ``per_lookup``: the key of a
    prefix the cache does not hold equals one of them (n / 2^bits). ``lookups_per_s``: keys
    computed per second if every block of every token the run processed is looked up once
    (``results.total_tokens_per_s`` / ``settings.block_size``). ``years``: the mean time
    between false matches at that rate. ``blocks``: n itself.
    """
    import math

    from .record_files import find, load, scalar

    if quantity not in COLLISION_QUANTITIES:
        raise ValueError(f"quantity {quantity!r} is not one of {', '.join(COLLISION_QUANTITIES)}")
    if not (bits.isdigit() and 1 <= int(bits) <= 256):
        raise ValueError(f"bits {bits!r} must be a whole number from 1 to 256")
    if ctx.srcdir is None:
        raise ValueError("records are read from the book's source folder, which is not known here")
    data = load(ctx.note(find(ctx.srcdir, record)), record)
    blocks = scalar(data, "settings.num_kvcache_blocks", record)
    space = 2 ** int(bits)
    rate = (scalar(data, "results.total_tokens_per_s", record)
            / scalar(data, "settings.block_size", record))
    return {
        "blocks": blocks,
        "any_pair": -math.expm1(-blocks * (blocks - 1) / (2 * space)),
        "per_lookup": blocks / space,
        "lookups_per_s": rate,
        "years": space / (blocks * rate * SECONDS_PER_YEAR),
    }[quantity]


def birthday_attempts(ctx: ValueContext, bits: str) -> float:
    """Random inputs tried, on average, before two of them share a ``bits``-bit hash:
    sqrt(pi / 2 * 2^bits), for a uniformly random hash (the birthday problem)."""
    import math

    if not (bits.isdigit() and 1 <= int(bits) <= 256):
        raise ValueError(f"bits {bits!r} must be a whole number from 1 to 256")
    return math.sqrt(math.pi / 2 * 2 ** int(bits))


PROFILE_QUANTITIES = ("kernels", "busy_ms")
NOT_KERNELS = ("aten::", "Memcpy", "Memset")  # listed beside the kernels by torch.profiler
TOP_KERNELS = 25  # nanovllm/bench/profile.py's top_kernels keeps this many entries


def profile_step(ctx: ValueContext, record: str, run: str, quantity: str) -> float:
    """One step of a run profiled by ``nanovllm/bench/profile.py`` (a bench ``profile.json``;
    RUN is its dotted path there, such as ``bs1.decode_bs1``). ``kernels``: the GPU kernels
    the step starts, copies and memsets left out. ``busy_ms``: the time the GPU is busy in the
    step, kernels and copies (the torch operators the profiler lists beside them would count
    their copies twice). The profile lists the busiest entries only, so a list that may have
    been cut short is refused."""
    from .record_files import find, load

    if quantity not in PROFILE_QUANTITIES:
        raise ValueError(f"quantity {quantity!r} is not one of {', '.join(PROFILE_QUANTITIES)}")
    if ctx.srcdir is None:
        raise ValueError("records are read from the book's source folder, which is not known here")
    data = load(ctx.note(find(ctx.srcdir, record)), record)
    node = data
    for part in run.split("."):
        if not isinstance(node, dict) or part not in node:
            held = ", ".join(node) if isinstance(node, dict) else type(node).__name__
            raise ValueError(f"{record!r} has no run {run!r}; at {part!r} it holds: {held}")
        node = node[part]
    entries = node.get("kernels") if isinstance(node, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{record!r}: {run} has no list of kernels")
    if len(entries) >= TOP_KERNELS:
        raise ValueError(f"{record!r}: {run} lists {len(entries)} entries, the profiler's limit, "
                         "so it may leave kernels out")
    if quantity == "kernels":
        return sum(e["calls_per_step"] for e in entries if not e["name"].startswith(NOT_KERNELS))
    return sum(e["us_per_step"] for e in entries if not e["name"].startswith("aten::")) / 1000


VALUES: dict[str, Callable[..., object]] = {
    "kv_bytes_per_token": kv_bytes_per_token,
    "kv_bytes": kv_bytes,
    "model_config": model_config_value,
    "engine_default": engine_default,
    "engine_constant": engine_constant,
    "engine_lines": engine_lines,
    "key_collision": key_collision,
    "birthday_attempts": birthday_attempts,
    "profile_step": profile_step,
}


def registry(config) -> dict[str, Callable[..., object]]:
    from .fragmentation import VALUES as FRAGMENTATION_VALUES
    from .model_values import VALUES as MODEL_VALUES  # (they import this module)
    from .record_files import record_value

    values = {**VALUES, **MODEL_VALUES, **FRAGMENTATION_VALUES, "record": record_value}
    for name, target in config.nanobook_values.items():
        module, _, attr = target.partition(":")
        values[name] = getattr(importlib.import_module(module), attr)
    return values


def format_value(value: object, spec: str) -> str:
    spec = spec.strip()
    if spec in UNITS:
        if not isinstance(value, (int, float)):
            raise ValueError(f"unit {spec} needs a number, got {value!r}")
        scaled = value / UNITS[spec]
        return f"{scaled:,.0f}" if scaled == int(scaled) else f"{scaled:,.1f}"
    if spec:
        return format(value, spec)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class ValueRole(SphinxRole):
    def run(self):
        text = self.text.strip()
        expression, _, spec = text.partition("|")
        name, _, raw_args = expression.strip().partition(":")
        args = [a.strip() for a in raw_args.split(",")] if raw_args.strip() else []
        try:
            values = registry(self.config)
        except (ImportError, AttributeError) as error:
            return self._fail(f"nanobook_values in conf.py: {error}")
        if name not in values:
            return self._fail(f"unknown value {name!r}; known values: {', '.join(sorted(values))}")
        ctx = ValueContext(engine_root(self.config), self.config, srcdir=Path(self.env.srcdir))
        try:
            result = values[name](ctx, *args)
            shown = format_value(result, spec)
        except (ValueError, TypeError, KeyError, OSError) as error:
            return self._fail(f"{name}({', '.join(args)}) failed: {error}")
        for path in ctx.used_files:
            self.env.note_dependency(str(path))
        node = nodes.inline(self.rawtext, shown, classes=["nb-value"], title=f"computed: {text}")
        self.set_source_info(node)
        return [node], []

    def _fail(self, message: str):
        BookWarning.VALUE.error(f"value {self.text!r} in {self.env.docname!r}: {message}",
                                env=self.env, location=self.get_location())
        node = nodes.problematic(self.rawtext, self.rawtext)
        return [node], []


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.engine_source")
    app.add_config_value("nanobook_model_dirs", [], "env", types=[list, tuple])
    app.add_config_value("nanobook_models", {}, "env", types=[dict])
    app.add_config_value("nanobook_values", {}, "env", types=[dict])
    app.add_role("value", ValueRole())
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
