"""Executed checks: outputs, expectations, namespaces, GPU records, gpu-check, doctest."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from nanobook import records
from nanobook.book import book
from nanobook.engine_source import files_reached, imported_names

from tests.ext.conftest import assert_snapshot, fragment, latex, messages_of, page, warnings_of


def origins(html: str) -> list[str]:
    return re.findall(r'<p class="nb-check-origin ([^"]*)">([^<]*)</p>', html)


@pytest.mark.sphinx("html", testroot="check", freshenv=True)
def test_outputs_are_shown_with_where_they_came_from(app):
    app.build()
    assert warnings_of(app) == ""
    html = page(app)
    # The hidden set-up block printed nothing: it is gone from the page entirely.
    assert 'id="check-setup"' not in html
    take = fragment(html, "div", "nb-check", 0)
    assert_snapshot("check-live.html", take)
    assert "0 1\n[2, 3]" in take  # the real output, though the expectation had "[...]"
    raised = fragment(html, "div", "nb-check", 1)
    assert "KeyError: 99" in raised
    hidden_output = fragment(html, "div", "nb-check", 2)
    assert "not shown" not in hidden_output.split("</pre>", 1)[1]
    gpu = fragment(html, "div", "nb-check", 3)
    assert_snapshot("check-recorded.html", gpu)
    assert origins(html) == [
        ("nb-live", "Ran during this build on CPU."),
        ("nb-live", "Ran during this build on CPU."),
        ("nb-recorded", "Recorded on NVIDIA H100 80GB HBM3 on 2026-11-28 (driver 580.159.04, "
                        "CUDA 13.0, torch 2.11.0+cu130, Triton 3.6.0, engine 7e0c70df59b8). This "
                        "build had no GPU, so the output comes from that record."),
    ]


@pytest.mark.sphinx("html", testroot="check", freshenv=True)
def test_shared_objects_are_built_once_per_build(app):
    app.build()
    assert book.created == ["pool"]


@pytest.mark.sphinx("latex", testroot="check", freshenv=True)
def test_latex_shows_code_output_and_origin(app):
    app.build()
    assert warnings_of(app) == ""
    tex = latex(app)
    assert tex.count(r"\begin{sphinxuseclass}{nb-check-output}") == 3
    assert "Recorded on NVIDIA H100 80GB HBM3" in tex
    assert tex.count("not shown") == 1  # in the code, not as output


@pytest.mark.sphinx("html", testroot="check-errors", freshenv=True)
def test_failures_fail_the_build(app):
    app.build()
    warnings = warnings_of(app)
    messages = messages_of(app)

    def line_for(doc: str, subtype: str) -> str:
        found = [m for m in messages if f"{doc}.md" in m and f"[nanobook.{subtype}]" in m]
        assert found, (doc, subtype, warnings)
        return found[0]

    assert "check sum in 'mismatch': the output differs" in line_for("mismatch", "check_mismatch")
    assert "check broken in 'failure' raised KeyError: 7" in line_for("failure", "check_failed")
    assert "needs 2 GPU(s), this machine has 0, and it has no record" in line_for(
        "missing-record", "record_missing")
    assert "record broken-json.json cannot be read: not valid JSON" in line_for(
        "bad-record", "record_invalid")
    assert "raised KeyError, not ValueError" in line_for("wrong-exception", "check_failed")
    assert "was meant to raise KeyError but did not" in line_for("no-exception", "check_failed")
    syntax = [m for m in messages if "syntax.md" in m]
    assert "a block with :gpus: needs a :name:" in syntax[0]
    assert "the code does not parse" in syntax[1]
    # The diff of a mismatch is in the message; the block after a failed one is not run.
    assert "Expected:" in warnings and "11" in warnings and "Got:" in warnings
    assert ("nb-not-run", "Not run: check broken above it failed.") in origins(page(app, "failure"))
    assert app.statuscode == 1


@pytest.mark.sphinx("html", testroot="check", srcdir="check-stale-engine", freshenv=True)
def test_a_changed_engine_file_makes_the_record_stale(app):
    engine = Path(app.srcdir) / "toyengine" / "pool.py"
    engine.write_text(engine.read_text() + "\n# a change\n")
    app.build()
    warnings = warnings_of(app)
    assert "WARNING: check on-gpu in 'index': its GPU record is stale (toyengine/pool.py changed)" \
        in warnings and "[nanobook.record_stale]" in warnings
    assert "run `make gpu-check CHAPTER=index BLOCK=on-gpu`" in warnings
    (kind, text), = [o for o in origins(page(app)) if "nb-recorded" in o[0]]
    assert "nb-stale" in kind and "made for an earlier version" in text
    assert app.statuscode == 0  # a warning: -W (CI) turns it into a failure


@pytest.mark.sphinx("html", testroot="check", srcdir="check-stale-code", freshenv=True)
def test_a_changed_block_makes_the_record_stale(app):
    index = Path(app.srcdir) / "index.md"
    index.write_text(index.read_text().replace('print("blocks:"', 'print( "blocks:"'))
    app.build()
    assert "its GPU record is stale (the block's code changed)" in warnings_of(app)


@pytest.mark.sphinx("html", testroot="check", srcdir="check-with-gpu", freshenv=True,
                    confoverrides={"nanobook_gpus": 1})
def test_where_the_gpus_exist_the_block_runs(app):
    """(Simulated: nanobook_gpus=1 on a CPU machine; the block's torch code then fails there.)"""
    app.build()
    assert "check on-gpu in 'index' raised" in warnings_of(app)


def test_gpu_check_rewrites_every_record_and_the_book_then_uses_them(make_app, rootdir, tmp_path):
    srcdir = tmp_path / "gpucheck"
    shutil.copytree(rootdir / "test-gpucheck", srcdir)
    writer = make_app("gpucheck", srcdir=srcdir, freshenv=True, confoverrides={"nanobook_gpus": 1})
    writer.build()
    assert writer.statuscode == 0, warnings_of(writer)
    writer.cleanup()
    written = sorted(p.relative_to(srcdir).as_posix() for p in (srcdir / "_records").rglob("*.json"))
    assert written == ["_records/04-alpha/alpha-two.json", "_records/04-alpha/alpha.json",
                       "_records/05-beta/beta.json"]
    record = records.load(srcdir / "_records/04-alpha/alpha.json")
    assert record.output == "alpha 3\n" and record.gpus == 1 and record.doc == "04-alpha"
    assert sorted(record.engine_files) == ["toyengine/__init__.py", "toyengine/pool.py"]
    assert record.device and record.python and record.date
    # The records now serve a build that has no GPU.
    reader = make_app("html", srcdir=srcdir, freshenv=True)
    reader.build()
    assert warnings_of(reader) == ""
    assert [kind for kind, _ in origins(page(reader, "04-alpha"))] == ["nb-recorded"] * 2


@pytest.mark.sphinx("gpucheck", testroot="gpucheck", srcdir="gpucheck-chapter", freshenv=True,
                    confoverrides={"nanobook_gpus": 1, "nanobook_check_chapter": "04",
                                   "nanobook_check_block": "alpha-two"})
def test_gpu_check_narrows_to_a_chapter_and_a_block(app):
    app.build()
    written = [p.name for p in Path(app.srcdir, "_records").rglob("*.json")]
    assert written == ["alpha-two.json"]


@pytest.mark.sphinx("gpucheck", testroot="gpucheck", srcdir="gpucheck-none", freshenv=True,
                    confoverrides={"nanobook_gpus": 1, "nanobook_check_block": "gamma"})
def test_gpu_check_says_when_nothing_matches(app):
    app.build()
    assert "no GPU block matches the selection" in warnings_of(app)


@pytest.mark.sphinx("gpucheck", testroot="gpucheck", srcdir="gpucheck-no-gpu", freshenv=True)
def test_gpu_check_fails_without_the_gpus(app):
    app.build()
    assert "needs 1 GPU(s); this machine has 0" in warnings_of(app)
    assert app.statuscode == 1
    assert not Path(app.srcdir, "_records").exists()


@pytest.mark.sphinx("doctest", testroot="check", freshenv=True)
def test_make_doctest_runs_the_blocks(app):
    app.build()
    output = (Path(app.outdir) / "output.txt").read_text()
    # set-up, take (expected output), raises, hidden output; the GPU block is skipped here.
    assert "4 tests in default" in output and "0 failures in tests" in output, output
    assert app.statuscode == 0


@pytest.mark.sphinx("doctest", testroot="check-errors", freshenv=True)
def test_make_doctest_fails_on_a_changed_output(app):
    app.build()
    output = (Path(app.outdir) / "output.txt").read_text()
    assert "Expected:\n    11\nGot:\n    10" in output
    assert app.statuscode == 1


def test_imports_are_followed_through_the_engine(tmp_path):
    pkg = tmp_path / "eng"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def __getattr__(name):\n    from .lazy import Thing\n")
    (pkg / "lazy.py").write_text("from eng.sub import helper\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "helper.py").write_text("from . import other\nimport os\n")
    (pkg / "sub" / "other.py").write_text("")
    (pkg / "unused.py").write_text("")
    (tmp_path / "weights.bin").write_text("")
    found = files_reached(tmp_path, ["eng"], ["import numpy\nfrom eng import lazy"],
                          extra=["*.bin"])
    assert found == ["eng/__init__.py", "eng/lazy.py", "eng/sub/__init__.py", "eng/sub/helper.py",
                     "eng/sub/other.py", "weights.bin"]
    assert "pkg.mod" in imported_names("from . import mod", "pkg.x", is_package=False) | {"pkg.mod"}


def test_stale_reasons_name_what_changed():
    old = records.make_key("print(1)\n", 1, {"a.py": "1", "b.py": "2"})
    new = records.make_key("print(2)\n", 2, {"a.py": "1", "b.py": "3", "c.py": "4"})
    record = records.Record(doc="d", name="n", key=old.key, code_sha256=old.code_sha256, gpus=1,
                            engine_files=old.engine_files, output="", device="X", driver="",
                            cuda="", torch="", triton="", python="3", engine_commit="c", date="2026")
    assert record.stale_reasons(old) == []
    assert record.stale_reasons(new) == ["the block's code changed", "it asked for 1 GPU(s), now 2",
                                         "b.py changed", "it now depends on c.py"]
    assert json.loads(record.to_json())["key"] == old.key
    with pytest.raises(records.RecordError, match="missing fields: output"):
        records.Record.from_json(json.dumps({k: v for k, v in json.loads(record.to_json()).items()
                                             if k != "output"}))
