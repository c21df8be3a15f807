"""Read the Docs builds what CI tests: same install target, warnings as errors, HTML and PDF."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import ROOT

RTD = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text())
MAKEFILE = (ROOT / "Makefile").read_text()


def test_version_and_build_image():
    assert RTD["version"] == 2
    assert set(RTD) <= {"version", "build", "sphinx", "formats", "python", "submodules", "search"}
    assert RTD["build"]["os"].startswith("ubuntu-")
    assert RTD["build"]["tools"]["python"] == "3.11"


def test_warnings_fail_the_build():
    assert RTD["sphinx"] == {"configuration": "conf.py", "fail_on_warning": True}
    assert re.search(r"^SPHINXOPTS \?= -W -n --keep-going$", MAKEFILE, re.M)


def test_builds_html_and_pdf_with_the_makefile():
    assert RTD["formats"] == ["pdf"]
    jobs = RTD["build"]["jobs"]
    assert jobs["build"]["html"][0].startswith("make html ")
    assert jobs["build"]["pdf"][0].startswith("make latexpdf ")
    assert "$READTHEDOCS_OUTPUT/pdf" in " ".join(jobs["build"]["pdf"])


def test_install_is_the_one_ci_uses():
    """CI runs `make test`, which depends on `venv`; Read the Docs runs `make venv` too."""
    (install,) = RTD["build"]["jobs"]["install"]
    assert install.startswith("make venv ")
    assert re.search(r"^test: venv\b", MAKEFILE, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    # The same PyTorch release, taken as a CPU build on both.
    default = re.search(r"^TORCH_SPEC \?= (torch==[\d.]+)$", MAKEFILE, re.M).group(1)
    assert f'TORCH_SPEC="{default}+cpu ' in install


def test_no_python_install_section_bypasses_the_makefile():
    assert "python" not in RTD


def test_pdf_file_name_matches_conf():
    conf = (ROOT / "conf.py").read_text()
    assert '"nano-vllm-deep-dive.tex"' in conf
    assert any("nano-vllm-deep-dive.pdf" in c for c in RTD["build"]["jobs"]["build"]["pdf"])
    assert Path(ROOT / "source" / "book.md").is_file()
