"""Measured records as tables and values: columns, formats, provenance, paths, errors, rebuilds."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.ext.conftest import ROOT, fragment, latex, messages_of, page

WHERE = ("records are named by their path under source/_records/, such as "
         "bench/h200/nanovllm_a_graphs.json")
TOY = "anonymous.json, broken.json, run_bs16.json, run_bs2.json, run_bs4.json"


def _cells(table: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>",
                                                                     row, re.S)] for row in rows]


@pytest.mark.sphinx("html", testroot="records", freshenv=True)
def test_a_record_table_has_its_columns_formats_and_provenance(app):
    app.build()
    assert [m for m in messages_of(app) if "errors.md" not in m] == []
    html = page(app)
    sweep = fragment(html, "table", "nb-record-table")
    # A pattern's records in natural order: bs2, bs4, bs16 (not bs16, bs2, bs4).
    assert _cells(sweep) == [
        ["batch", "output tok/s", "TPOT p50", "TPOT p99", "variant"],
        ["2", "1,235", "1.50", "\u2014", "bs2"],
        ["4", "2,500", "1.75", "\u2014", "bs4"],
        ["16", "9,876", "2.25", "\u2014", "bs16"],
    ]
    assert 'id="sweep"' in sweep
    caption = re.search(r"<caption>(.*?)</caption>", sweep, re.S).group(1)
    assert " ".join(re.sub(r"<[^>]+>", "", caption).split()).startswith(
        "Throughput by batch. Records bench/toy/run_bs*.json in source/_records/, measured on "
        "Toy GPU, engine 0123456, 2026-01-02.")
    assert "<em>batch</em>" in caption
    # Columns of numbers are right-aligned (header included); the others are not.
    assert re.findall(r'<th class="head( nb-num)?">', sweep) == [" nb-num"] * 3 + [""] * 2


@pytest.mark.sphinx("html", testroot="records", freshenv=True)
def test_bench_and_tp_records_both_say_where_they_were_made(app):
    app.build()
    table = fragment(page(app), "table", "nb-record-table", nth=1)
    # Sorted by file name; TP records keep device, gpus, commit and date at the top level.
    assert _cells(table) == [
        ["where", "file", "made"],
        ["Toy GPU", "bench/toy/run_bs2.json", "2026-01-02"],
        ["2 \u00d7 Toy GPU", "tp/pair/tp1.json", "2026-02-03"],
        ["2 \u00d7 Toy GPU", "tp/pair/tp2.json", "2026-02-03"],
    ]
    caption = " ".join(re.sub(r"<[^>]+>", "", re.search(r"<caption>(.*?)</caption>", table,
                                                         re.S).group(1)).split())
    assert caption.startswith(
        "Records tp/pair/tp2.json tp/pair/tp1.json bench/toy/run_bs2.json in source/_records/, "
        "measured on Toy GPU, engine 0123456, 2026-01-02; 2 \u00d7 Toy GPU, engine fedcba9, "
        "2026-02-03.")


@pytest.mark.sphinx("html", testroot="records", freshenv=True)
def test_record_values(app):
    app.build()
    text = " ".join(re.sub(r"<[^>]+>", "", page(app)).split())
    assert ("The toy GPU ran 9,876.5 tokens/s at commit 0123456; its second step count was 5, "
            "and TP=2 ran on 2 \u00d7 Toy GPU.") in text
    messages = [m.split(": ERROR: ", 1)[1] for m in messages_of(app) if "errors.md" in m]
    assert messages == [
        "value 'record:bench/toy/run_bs3.json,results.output_tokens_per_s' in 'errors': "
        "record(bench/toy/run_bs3.json, results.output_tokens_per_s) failed: no record "
        f"'bench/toy/run_bs3.json'; bench/toy/ holds: {TOY} [nanobook.value]",
        "value 'record:bench/toy/run_bs2.json,results.tokens' in 'errors': "
        "record(bench/toy/run_bs2.json, results.tokens) failed: 'bench/toy/run_bs2.json' has no "
        "field 'results.tokens'; results holds: output_tokens_per_s, tpot_ms, steps "
        "[nanobook.value]",
        "value 'record:../conf.py,x' in 'errors': record(../conf.py, x) failed: '../conf.py' "
        f"leads out of source/_records/ with '..'; {WHERE} [nanobook.value]",
        "value 'record:bench/toy/run_bs2.json,results.tpot_ms' in 'errors': "
        "record(bench/toy/run_bs2.json, results.tpot_ms) failed: 'bench/toy/run_bs2.json': "
        "results.tpot_ms is an object, not a value; it holds: p50, p99 [nanobook.value]",
    ]


@pytest.mark.sphinx("latex", testroot="records", freshenv=True)
def test_a_record_table_in_latex(app):
    app.build()
    tex = latex(app)
    # Right-aligned number columns, left-aligned text; the caption with its provenance.
    assert r"\begin{tabulary}{\linewidth}[t]{|R|R|R|L|L|}" in tex
    assert r"\sphinxcaption{Throughput by \sphinxstyleemphasis{batch}. Records " in tex
    assert "measured on Toy GPU, engine 0123456, 2026\\sphinxhyphen{}01\\sphinxhyphen{}02." in tex
    assert r"\sphinxAtStartPar" in tex and "9,876" in tex


@pytest.mark.sphinx("html", testroot="records", srcdir="records-rebuild", freshenv=True)
def test_the_page_is_read_again_when_a_record_changes(app):
    app.build()
    record = Path(app.srcdir) / "_records" / "bench" / "toy" / "run_bs16.json"
    data = json.loads(record.read_text())
    data["results"]["output_tokens_per_s"] = 4321.0
    time.sleep(0.01)
    record.write_text(json.dumps(data))
    app.build()
    assert "The toy GPU ran 4,321.0 tokens/s" in " ".join(re.sub(r"<[^>]+>", "", page(app)).split())
    assert ["16", "4,321", "2.25", "\u2014", "bs16"] in _cells(
        fragment(page(app), "table", "nb-record-table"))


@pytest.mark.sphinx("html", testroot="records", srcdir="records-added", freshenv=True)
def test_a_record_added_to_a_patterns_folder_joins_its_table(app):
    app.build()
    folder = Path(app.srcdir) / "_records" / "bench" / "toy"
    data = json.loads((folder / "run_bs2.json").read_text())
    data["workload"]["parameters"]["batch_size"] = 8
    time.sleep(0.01)
    (folder / "run_bs8.json").write_text(json.dumps(data))
    app.build()
    rows = _cells(fragment(page(app), "table", "nb-record-table"))
    assert [row[0] for row in rows] == ["batch", "2", "4", "8", "16"]


@pytest.mark.sphinx("html", testroot="record-errors", freshenv=True)
def test_record_table_errors_name_what_exists(app, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"environment": {}}')
    (Path(app.srcdir) / "_records" / "bench" / "toy" / "secret.json").symlink_to(secret)
    app.build()
    found: dict[str, str] = {}
    for message in messages_of(app):
        doc = re.match(r"\S*/([\w-]+)\.md:\d+: ERROR: (.*)", message, re.S)
        assert doc and doc.group(1) not in found, message
        found[doc.group(1)] = doc.group(2)
    toy = f"{TOY}, secret.json"

    def table(doc: str) -> str:
        return f"record-table in '{doc}': "

    assert found == {
        "no-records": table("no-records") + ":records: is required: the records to show, by "
        "their paths under source/_records/ (a pattern such as bench/h200/nanovllm_e_bs*.json is "
        "allowed) [nanobook.record_table]",
        "no-columns": table("no-columns") + "it has no columns; give one line per column: "
        "'header = field' or 'header = field | format' (fields are dotted paths such as "
        "results.output_tokens_per_s) [nanobook.record_table]",
        "bad-column": table("bad-column") + "column line 1 'output tok/s "
        "results.output_tokens_per_s' is not 'header = field' or 'header = field | format' "
        "[nanobook.record_table]",
        "absolute": table("absolute") + f"'/etc/passwd' is an absolute path; {WHERE} "
        "[nanobook.record_table]",
        "dotdot": table("dotdot") + f"'bench/../../conf.py' leads out of source/_records/ with "
        f"'..'; {WHERE} [nanobook.record_table]",
        "link": table("link") + f"'bench/toy/secret.json' is a link to {secret.resolve()}, "
        f"outside source/_records/; {WHERE} [nanobook.record_table]",
        "missing-file": table("missing-file") + "no record 'bench/toy/run_bs3.json'; bench/toy/ "
        f"holds: {toy} [nanobook.record_table]",
        "missing-folder": table("missing-folder") + "no record 'bench/nothere/run.json'; bench/ "
        "holds: toy/ [nanobook.record_table]",
        "no-match": table("no-match") + "no record matches 'bench/toy/none_*.json'; bench/toy/ "
        f"holds: {toy} [nanobook.record_table]",
        "glob-folder": table("glob-folder") + "'bench/*/run_bs2.json': a pattern may match file "
        f"names only, not folders; {WHERE} [nanobook.record_table]",
        "missing-field": table("missing-field") + "'bench/toy/run_bs2.json' has no field "
        "'results.tokens'; results holds: output_tokens_per_s, tpot_ms, steps "
        "[nanobook.record_table]",
        "list-index": table("list-index") + "'bench/toy/run_bs2.json': results.steps is a list "
        "of 2 items; pick one by its index, 0 to 1, not '5' [nanobook.record_table]",
        "object-field": table("object-field") + "'bench/toy/run_bs2.json': results.tpot_ms is an "
        "object, not a value; it holds: p50, p99 [nanobook.record_table]",
        "bad-format": table("bad-format") + "column 'tok/s': format ',.0q' does not fit 1234.567 "
        "(from bench/toy/run_bs2.json): Cannot specify ',' with 'q'. [nanobook.record_table]",
        "not-json": table("not-json") + "'bench/toy/broken.json' is not valid JSON (Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)) "
        "[nanobook.record_table]",
        "no-provenance": table("no-provenance") + "'bench/toy/anonymous.json' does not say "
        "device, engine_commit, date (bench records keep device, engine_commit and date under "
        "'environment', TP records at the top level) [nanobook.record_table]",
        "not-a-record": table("not-a-record") + "'tp/pair/notes.txt' is not a JSON record; "
        "tp/pair/ holds: tp1.json, tp2.json [nanobook.record_table]",
        "bad-name": table("bad-name") + ":name: 'Bad Name' is not allowed; a name may hold only "
        "lowercase letters, digits and '-', starting with a letter or a digit "
        "[nanobook.record_table]",
        "bad-sort": table("bad-sort") + ":sort: results.tpot_ms.p99 must be all numbers or all "
        "text, got None, None, None [nanobook.record_table]",
        "unknown-pseudo": table("unknown-pseudo") + "no field '@host'; the fields that say where "
        "a record comes from are @gpu, @commit, @date, @file [nanobook.record_table]",
    }
    # Nothing of the file a link points to reaches a page; every page was still written.
    assert all("environment" not in page(app, doc) for doc in found)
    assert app.statuscode == 1


def test_the_books_records_render_with_their_machines():
    """The real bench and TP records: both layouts give GPU, commit and date."""
    from nanobook import record_files

    srcdir = ROOT / "source"
    bench = record_files.find(srcdir, "bench/h200/nanovllm_a_graphs-compile.json")
    tp = record_files.find(srcdir, "tp/h200x2/tp2.json")
    assert record_files.provenance(record_files.load(bench, "b"), "b") == record_files.Provenance(
        "NVIDIA H200", "2f25ba7", "2026-11-28")
    assert record_files.provenance(record_files.load(tp, "t"), "t") == record_files.Provenance(
        "2 \u00d7 NVIDIA H200", "712e199", "2026-11-28")


@pytest.mark.sphinx("text", testroot="records", freshenv=True)
def test_a_record_table_in_plain_text_keeps_each_cell_on_one_line(app):
    app.build()
    text = (Path(app.outdir) / "index.txt").read_text()
    # Each column is as wide as its widest cell, so a row of numbers is one line.
    assert re.search(r"^\| 16 +\| 9,876 +\| 2\.25 +\| \u2014 +\| bs16 +\|$", text, re.M), text
    assert re.search(r"^\| batch +\| output tok/s +\| TPOT p50 +\| TPOT p99 +\| variant +\|$",
                     text, re.M), text
