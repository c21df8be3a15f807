"""The LaTeX side of the extension: ``nanobook.sty`` travels with the PDF build.

Every component prints through macros and environments of ``latex/nanobook.sty``
(``nbslice``, ``\\nbmark``, ``nbquiz``, ``nbsim`` ...), so the PDF's look is in one
file. The extension adds the file to ``latex_additional_files`` and the package
to the preamble.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

STY = Path(__file__).parent / "latex" / "nanobook.sty"


def add_style(app: Sphinx, config: Config) -> None:
    files = list(config.latex_additional_files)
    if str(STY) not in files:
        config.latex_additional_files = [*files, str(STY)]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_style)
    app.add_latex_package("nanobook")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
