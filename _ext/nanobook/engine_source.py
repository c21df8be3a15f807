"""Where the engine's source files are, and which of them a piece of code reaches.

Slices read engine files; executed checks and their GPU records hash them. Both
find them the same way: a dotted module name (``nanovllm.engine.block_manager``)
under ``nanobook_engine_root`` (the folder that holds the ``nanovllm`` package,
by default the folder of ``conf.py``), or a path relative to that folder.

``files_reached`` answers "which engine files can this code's behaviour depend
on?" without running it, so a CPU machine and a GPU machine compute the same
answer: every ``.py`` file of the engine packages that the code's ``import``
statements name, with the ``__init__.py`` of each package on the way, and then,
transitively, every engine module that those files import. Imports inside
functions count too (``nanovllm/__init__.py`` imports ``LLM`` lazily), so the
set may be larger than what one run imports, never smaller. Modules imported by
a computed name (``importlib.import_module(name)``) are not seen; a check that
does that lists the files in ``:depends:``.
"""

from __future__ import annotations

import ast
import glob
import hashlib
from collections.abc import Iterable
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config


def engine_root(config: Config) -> Path:
    """The folder holding the engine packages (``config-inited`` fills in the default)."""
    return Path(config.nanobook_engine_root).resolve()


def engine_packages(config: Config) -> tuple[str, ...]:
    return tuple(config.nanobook_engine_packages)


def module_file(root: Path, dotted: str) -> Path | None:
    """The file of a module or package, or None."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def display_path(root: Path, path: Path) -> str:
    """The path as the book prints it: relative to the engine root, with slashes."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def file_digest(path: Path) -> str:
    """SHA-256 of the file's text with line endings normalised (a checkout on Windows hashes alike)."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    rel = path.resolve().relative_to(root).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imported_names(source: str, module: str = "", is_package: bool = False) -> set[str]:
    """Absolute names of the modules (and possible submodules) that ``source`` imports."""
    tree = ast.parse(source)
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                if node.level > 1:
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            if not base:
                continue
            names.add(base)
            # ``from pkg import mod`` may import a submodule: keep it as a candidate.
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _files_for(root: Path, dotted: str) -> list[Path]:
    """The module's file and the ``__init__.py`` of every package above it (all run on import)."""
    parts = dotted.split(".")
    found = []
    for i in range(1, len(parts) + 1):
        path = module_file(root, ".".join(parts[:i]))
        if path is None:
            break
        found.append(path)
    return found


def files_reached(root: Path, packages: Iterable[str], sources: Iterable[str],
                  extra: Iterable[str] = ()) -> list[str]:
    """Engine files (relative, sorted) that ``sources`` reach through imports, plus ``extra`` globs."""
    packages = tuple(packages)

    def in_engine(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in packages)

    seen: set[Path] = set()
    queue: list[Path] = []
    for source in sources:
        for name in imported_names(source):
            if in_engine(name):
                queue += _files_for(root, name)
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        module, is_package = _module_name(root, path)
        try:
            names = imported_names(path.read_text(encoding="utf-8"), module, is_package)
        except (SyntaxError, ValueError):  # not Python, not UTF-8 (UnicodeDecodeError), NUL bytes
            continue  # the file is still hashed; its imports are unknown
        for name in names:
            if in_engine(name):
                queue += [p for p in _files_for(root, name) if p not in seen]
    for pattern in extra:
        for match in glob.glob(str(root / pattern), recursive=True):
            if Path(match).is_file():
                seen.add(Path(match))
    return sorted(display_path(root, p) for p in seen)


def _default_root(app: Sphinx, config: Config) -> None:
    if not config.nanobook_engine_root:
        config.nanobook_engine_root = str(app.confdir)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _default_root)
    # The folder that holds the engine packages; empty means the folder of conf.py.
    app.add_config_value("nanobook_engine_root", "", "env", types=[str])
    app.add_config_value("nanobook_engine_packages", ["nanovllm"], "env", types=[list, tuple])
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
