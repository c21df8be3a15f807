"""Recorded outputs of the checks that need a GPU, in ``source/_records/``.

A record is one JSON file per block, ``_records/<page>/<name>.json``, holding the
block's output and where it was made: device, driver, CUDA, torch, triton and
Python versions, the engine's commit and the date.

It is keyed on what the output depends on, hashed with SHA-256:

* the block's code (a GPU block runs in a namespace of its own, so its code is
  all of its input besides the engine);
* the number of GPUs it asks for;
* every engine file its code and those blocks reach through imports
  (``engine_source.files_reached``), and the files its ``:depends:`` globs name.

When any of them changes the record is stale: the page still shows it, marked
as such, and the build warns, naming what changed (``-W`` turns that into a
failure in CI). ``make gpu-check`` runs the blocks on a GPU machine and rewrites
their records; the records are committed with the change that made them stale.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORDS_DIR = "_records"  # under the source folder
FORMAT = 1


class RecordError(ValueError):
    """A record file that cannot be used (bad JSON, missing or wrong fields)."""


@dataclass
class BlockKey:
    """Everything a GPU block's output depends on, as digests."""

    code_sha256: str
    gpus: int
    engine_files: dict[str, str] = field(default_factory=dict)  # path -> sha256

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_key(code: str, gpus: int, engine_files: dict[str, str]) -> BlockKey:
    return BlockKey(
        code_sha256=sha256_text(code),
        gpus=gpus,
        engine_files=dict(sorted(engine_files.items())),
    )


@dataclass
class Record:
    doc: str
    name: str
    key: str
    code_sha256: str
    gpus: int
    engine_files: dict[str, str]
    output: str
    device: str
    driver: str
    cuda: str
    torch: str
    triton: str
    python: str
    engine_commit: str
    date: str
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecordError(f"not valid JSON ({error})") from None
        if not isinstance(raw, dict):
            raise RecordError("expected a JSON object")
        names = {f for f in cls.__dataclass_fields__}
        missing = sorted(names - set(raw) - {"format"})
        if missing:
            raise RecordError(f"missing fields: {', '.join(missing)}")
        unknown = sorted(set(raw) - names)
        if unknown:
            raise RecordError(f"unknown fields: {', '.join(unknown)}")
        if raw.get("format", FORMAT) != FORMAT:
            raise RecordError(f"format {raw['format']!r}; this extension reads format {FORMAT}")
        return cls(**raw)

    def stale_reasons(self, current: BlockKey) -> list[str]:
        """What changed since the record was made; empty when it is current."""
        if self.key == current.key:
            return []
        reasons = []
        if self.code_sha256 != current.code_sha256:
            reasons.append("the block's code changed")
        if self.gpus != current.gpus:
            reasons.append(f"it asked for {self.gpus} GPU(s), now {current.gpus}")
        for path in sorted(set(self.engine_files) | set(current.engine_files)):
            old, new = self.engine_files.get(path), current.engine_files.get(path)
            if old == new:
                continue
            if old is None:
                reasons.append(f"it now depends on {path}")
            elif new is None:
                reasons.append(f"it no longer depends on {path}")
            else:
                reasons.append(f"{path} changed")
        return reasons or ["its key changed"]

    def provenance(self) -> str:
        """One sentence for the page: where and when this output was made."""
        day = self.date[:10]
        bits = [f"driver {self.driver}" if self.driver else "",
                f"CUDA {self.cuda}" if self.cuda else "",
                f"torch {self.torch}" if self.torch else "",
                f"Triton {self.triton}" if self.triton else "",
                f"engine {self.engine_commit}" if self.engine_commit else ""]
        details = ", ".join(b for b in bits if b)
        return f"Recorded on {self.device} on {day}" + (f" ({details})" if details else "") + "."


def record_path(srcdir: Path, doc: str, name: str) -> Path:
    return Path(srcdir) / RECORDS_DIR / doc / f"{name}.json"


def load(path: Path) -> Record:
    return Record.from_json(path.read_text(encoding="utf-8"))


def write(path: Path, record: Record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.to_json(), encoding="utf-8")


# -- facts about the machine a record is made on ------------------------------------------------

def _run(cmd: list[str], cwd: Path | None = None) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def engine_commit(root: Path, packages: tuple[str, ...]) -> str:
    """The engine's commit (short), marked when its files differ from it; or NANOBOOK_ENGINE_COMMIT."""
    if os.environ.get("NANOBOOK_ENGINE_COMMIT"):
        return os.environ["NANOBOOK_ENGINE_COMMIT"]
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root)
    if not commit:
        return "unknown"
    dirty = _run(["git", "status", "--porcelain", "--", *packages], cwd=root)
    return commit + (" with uncommitted changes" if dirty else "")


def machine_facts(gpus: int, root: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """Device, driver and versions of the machine running the checks now."""
    facts = {"device": "CPU", "driver": "", "cuda": "", "torch": "", "triton": "",
             "python": platform.python_version(), "engine_commit": engine_commit(root, packages),
             "date": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()}
    try:
        import torch
    except ImportError:
        return facts
    facts["torch"] = torch.__version__
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(max(1, gpus))]
        facts["device"] = names[0] if len(set(names)) == 1 and gpus <= 1 else (
            f"{len(names)} × {names[0]}" if len(set(names)) == 1 else " + ".join(names))
        facts["cuda"] = torch.version.cuda or ""
        smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        facts["driver"] = smi.splitlines()[0].strip() if smi else ""
    try:
        import triton

        facts["triton"] = triton.__version__
    except ImportError:
        pass
    return facts
