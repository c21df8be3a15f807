"""Fixtures shared by the book and browser tests: one real build of the book per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The fixtures (app, make_app, ...) of the extension's tests on small test books (tests/ext).
pytest_plugins = ["sphinx.testing.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SPHINX_OPTS = ["-W", "-n", "--keep-going"]
# The book's extension, for tests that build small test books in this process.
if str(ROOT / "_ext") not in sys.path:
    sys.path.insert(0, str(ROOT / "_ext"))


def require_tool(path_or_name: str, package: str) -> str:
    """The tool's path; on CI a missing tool fails the test, elsewhere it skips it."""
    found = path_or_name if os.path.isfile(path_or_name) else shutil.which(path_or_name)
    if found:
        return found
    message = f"{path_or_name} is missing (Debian package {package}; `make system-deps`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def sphinx_build(builder_args: list[str], outdir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sphinx", *builder_args, "-c", str(ROOT), *SPHINX_OPTS]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="session")
def html_build(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Build the whole book as HTML once; returns the output folder and the process."""
    out = tmp_path_factory.mktemp("book") / "html"
    proc = sphinx_build(["-b", "html", "-d", str(out.parent / "doctrees"), "source", str(out)], out)
    return out, proc


@pytest.fixture(scope="session")
def built_html(html_build) -> Path:
    out, proc = html_build
    assert proc.returncode == 0, f"HTML build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return out
