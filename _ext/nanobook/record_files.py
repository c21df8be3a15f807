"""Measured records in ``source/_records/``: finding one, reading a field, saying where it came from.

The book prints benchmark and tensor-parallel numbers from the JSON records a GPU run wrote
(``bench/<gpu>/*.json``, ``tp/<machine>/*.json``), never from a copy typed into the prose.
``{record-table}`` and the ``record`` value of ``{value}`` both read them through this module,
so both follow the same rules:

* A record is named by its path under ``source/_records/`` (``bench/h200/nanovllm_a_graphs.json``).
  An absolute path, a ``..``, or a link that leads out of that folder is an error: a page
  shows measured data, never an arbitrary file of the machine that builds it.
* A file that does not exist, or a field a record does not have, is an error that lists what
  does exist (the folder's records, the fields at that level), so the author can pick.
* A field is a dotted path (``results.tpot_ms.p50``); an integer picks an item of a list.
  ``@gpu``, ``@commit``, ``@date`` and ``@file`` are where the record was made and its name.
* Where a record was made: bench records keep the device, engine commit and date under
  ``environment``; TP records keep them at the top level, with the machine's GPU count in
  ``gpus``. ``provenance`` reads both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

RECORDS_DIR = "_records"  # under the source folder
WHERE = ("records are named by their path under source/_records/, such as "
         "bench/h200/nanovllm_a_graphs.json")
PSEUDO_FIELDS = {"@gpu": "the GPU it ran on", "@commit": "the engine commit (7 characters)",
                 "@date": "the day it was made (YYYY-MM-DD)", "@file": "its path under _records/"}
MAX_LISTED = 40  # names listed in an error, at most


class RecordFileError(ValueError):
    """A record that cannot be used: outside ``_records/``, missing, not JSON, no such field."""


def records_root(srcdir: Path | str) -> Path:
    return Path(srcdir) / RECORDS_DIR


def _check_name(name: str) -> PurePosixPath:
    """The name as a relative path with no ``..``; RecordFileError otherwise."""
    if not name.strip():
        raise RecordFileError(f"no record named; {WHERE}")
    if name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name):
        raise RecordFileError(f"{name!r} is an absolute path; {WHERE}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise RecordFileError(f"{name!r} leads out of source/_records/ with '..'; {WHERE}")
    return PurePosixPath(*parts)


def _inside(root: Path, path: Path, name: str) -> Path:
    """``path`` if it really lies in ``root`` (links followed); RecordFileError otherwise."""
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise RecordFileError(f"{name!r} is a link to {real}, outside source/_records/; {WHERE}")
    return path


def _listing(root: Path, folder: Path) -> str:
    """What the nearest existing folder holds: its subfolders and its JSON records."""
    while not folder.is_dir() and folder != root:
        folder = folder.parent
    if not folder.is_dir():
        return "source/_records/ does not exist"
    entries = sorted(f"{p.name}/" for p in folder.iterdir() if p.is_dir())
    entries += sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".json")
    where = folder.relative_to(root).as_posix() + "/" if folder != root else "source/_records/"
    shown = ", ".join(entries[:MAX_LISTED]) + (f", ... ({len(entries)} in all)"
                                               if len(entries) > MAX_LISTED else "")
    return f"{where} holds: {shown or 'nothing'}"


def find(srcdir: Path | str, name: str) -> Path:
    """The record file ``name`` (a path under ``_records/``), checked to be a JSON file there."""
    root = records_root(srcdir)
    rel = _check_name(name)
    path = _inside(root, root / rel, name)
    if not path.is_file():
        raise RecordFileError(f"no record {name!r}; {_listing(root, path.parent)}")
    if path.suffix != ".json":
        raise RecordFileError(f"{name!r} is not a JSON record; {_listing(root, path.parent)}")
    return path


def natural_key(text: str) -> list:
    """Sort key that puts bs2 before bs16 (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_all(srcdir: Path | str, pattern: str) -> list[Path]:
    """The records a name or a glob (``*``, ``?``, ``[...]``) names, in natural order."""
    if not any(c in pattern for c in "*?["):
        return [find(srcdir, pattern)]
    root = records_root(srcdir)
    rel = _check_name(pattern)
    folder = root / rel.parent
    if any(c in rel.parent.as_posix() for c in "*?["):
        raise RecordFileError(f"{pattern!r}: a pattern may match file names only, not folders; "
                              f"{WHERE}")
    _inside(root, folder, pattern)
    found = sorted((p for p in folder.glob(rel.name) if p.is_file() and p.suffix == ".json"),
                   key=lambda p: natural_key(p.name))
    if not found:
        raise RecordFileError(f"no record matches {pattern!r}; {_listing(root, folder)}")
    return [_inside(root, p, p.relative_to(root).as_posix()) for p in found]


def load(path: Path, name: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise RecordFileError(f"{name!r} is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise RecordFileError(f"{name!r} holds a JSON {type(value).__name__}, not an object")
    return value


@dataclass(frozen=True)
class Provenance:
    gpu: str
    commit: str
    date: str

    def words(self) -> str:
        return f"{self.gpu}, engine {self.commit}, {self.date}"


def provenance(record: dict, name: str) -> Provenance:
    """Where the record was made: ``environment`` of a bench record, the top level of a TP one."""
    env = record.get("environment")
    source = env if isinstance(env, dict) and "device" in env else record
    missing = [k for k in ("device", "engine_commit", "date") if not isinstance(source.get(k), str)]
    if missing:
        raise RecordFileError(
            f"{name!r} does not say {', '.join(missing)} (bench records keep device, "
            "engine_commit and date under 'environment', TP records at the top level)")
    gpus = source.get("gpus")
    gpu = f"{gpus} × {source['device']}" if isinstance(gpus, int) and gpus > 1 else source["device"]
    return Provenance(gpu=gpu, commit=source["engine_commit"][:7], date=source["date"][:10])


def field(record: dict, dotted: str, name: str) -> object:
    """One field of a record by dotted path; RecordFileError naming what exists otherwise."""
    if dotted.startswith("@"):
        if dotted not in PSEUDO_FIELDS:
            raise RecordFileError(f"no field {dotted!r}; the fields that say where a record comes "
                                  f"from are {', '.join(PSEUDO_FIELDS)}")
        if dotted == "@file":
            return name
        where = provenance(record, name)
        return {"@gpu": where.gpu, "@commit": where.commit, "@date": where.date}[dotted]
    if not re.fullmatch(r"[\w-]+(\.[\w-]+)*", dotted):
        raise RecordFileError(f"{dotted!r} is not a field path; give keys separated by dots, such "
                              "as results.tpot_ms.p50")
    node: object = record
    trail: list[str] = []
    for part in dotted.split("."):
        here = ".".join(trail) or "the record"
        if isinstance(node, dict):
            if part not in node:
                keys = ", ".join(list(node)[:MAX_LISTED]) or "nothing"
                raise RecordFileError(f"{name!r} has no field {'.'.join([*trail, part])!r}; "
                                      f"{here} holds: {keys}")
            node = node[part]
        elif isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                raise RecordFileError(f"{name!r}: {here} is a list of {len(node)} items; pick one "
                                      f"by its index, 0 to {len(node) - 1}, not {part!r}")
            node = node[int(part)]
        else:
            raise RecordFileError(f"{name!r}: {here} is {json.dumps(node)}, which has no field "
                                  f"{part!r}")
        trail.append(part)
    return node


def scalar(record: dict, dotted: str, name: str) -> object:
    """A field that can be printed: a number, a string, true/false or null."""
    value = field(record, dotted, name)
    if isinstance(value, dict):
        raise RecordFileError(f"{name!r}: {dotted} is an object, not a value; it holds: "
                              f"{', '.join(list(value)[:MAX_LISTED])}")
    if isinstance(value, list):
        raise RecordFileError(f"{name!r}: {dotted} is a list of {len(value)} items, not a value; "
                              f"pick one with {dotted}.0 ... {dotted}.{len(value) - 1}")
    return value


# -- the {value} function ------------------------------------------------------------------------

def record_value(ctx, name: str, dotted: str) -> object:
    """``record:PATH,FIELD``: one field of one record under ``source/_records/``."""
    if ctx.srcdir is None:
        raise ValueError("records are read from the book's source folder, which is not known here")
    path = ctx.note(find(ctx.srcdir, name))
    return scalar(load(path, name), dotted, name)
