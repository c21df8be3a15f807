"""One JSON record per benchmark run: what ran, where, with what, and what it measured.

A number in the book must say what hardware and software produced it, so every record
carries its environment: the device and its driver, the versions of Python, torch,
Triton and transformers, the engine's git commit, and the date (UTC). Nothing that
names a machine (no hostname, no user, no paths) goes in. The book renders these files
from ``source/_records/bench/`` without a GPU.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

SCHEMA = "nanovllm-bench/1"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def engine_commit() -> str:
    """The engine's git commit: $NANOVLLM_ENGINE_COMMIT (set where the tree is a copy without
    its .git), else ``git rev-parse HEAD``, with "+dirty" if nanovllm/ has uncommitted
    changes; "unknown" when neither is available."""
    if os.environ.get("NANOVLLM_ENGINE_COMMIT"):
        return os.environ["NANOVLLM_ENGINE_COMMIT"]
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--", ".") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def gpu_driver() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def environment() -> dict:
    import torch

    on_gpu = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if on_gpu else f"CPU ({platform.machine()})",
        "gpu_memory_gib": (round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
                           if on_gpu else None),
        "driver": gpu_driver() if on_gpu else None,
        "cuda": torch.version.cuda if on_gpu else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": package_version("triton"),
        "transformers": package_version("transformers"),
        "engine_commit": engine_commit(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def make_record(workload: dict, engine: str, settings: dict, results: dict,
                env: dict | None = None, **extra) -> dict:
    """``workload``: Workload.summary(); ``engine``: "nanovllm" or "transformers"."""
    return {"schema": SCHEMA, "engine": engine, "workload": workload, "settings": settings,
            "environment": env or environment(), "results": results, **extra}


def record_name(record: dict) -> str:
    """A file name that says what ran: engine, workload and the settings that vary."""
    variant = record["settings"].get("variant", "default")
    name = f"{record['engine']}_{record['workload']['name']}_{variant}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) + ".json"


def write_record(record: dict, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / record_name(record)
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path
