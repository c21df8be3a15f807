"""``{record-table}``: measured records as a table, one row per record.

Syntax (MyST)::

    ```{record-table}
    :records: bench/h200/nanovllm_e_bs*.json
    :caption: Workload (e): the same 512 + 128-token requests at growing batch sizes.
    :name: batch-sweep-table
    batch = workload.parameters.batch_size
    output tok/s = results.output_tokens_per_s | ,.0f
    TPOT p50 (ms) = results.tpot_ms.p50 | .2f
    ```

``:records:`` names the records (paths under ``source/_records/``, separated by spaces); a
name may be a pattern of file names (``nanovllm_e_bs*.json``), whose matches come in natural
order (bs2 before bs16). Each line of the content is a column: its header, ``=``, a field
(a dotted path, or ``@gpu``, ``@commit``, ``@date``, ``@file``), and optionally ``|`` and a
format: a Python format spec (``,.0f``, ``.2f``, ``.1%``) or ``KiB``/``MiB``/``GiB``, as
``{value}`` takes them. Integers print with thousands separators by default; columns of
numbers are right-aligned. ``:sort:`` orders the rows by a field. ``:name:`` is the table's
label (see ``nanobook.names``).

The caption ends with where the numbers were measured, read from the records themselves:
the GPU, the engine commit and the date (``nanobook.record_files.provenance``), once per
distinct machine and commit. The page is read again when a record changes, or when a file
is added to or removed from a folder a pattern reads.

A record outside ``source/_records/``, a file that does not exist, a field a record does not
have, a line that is not ``header = field | format``: each is an error naming the table and
listing what exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from . import record_files
from .names import name_problem
from .values import format_value
from .warnings import BookWarning

_COLUMN = re.compile(r"^(?P<header>[^=]*?)\s*=\s*(?P<field>[^|\s]+)\s*(?:\|\s*(?P<spec>.*?))?\s*$")
NULL = "\u2014"  # a JSON null prints as an em dash


class RecordTableDirective(SphinxDirective):
    has_content = True
    option_spec = {
        "records": directives.unchanged,
        "caption": directives.unchanged,
        "name": directives.unchanged,
        "sort": directives.unchanged,
    }

    def fail(self, message: str) -> list[nodes.Node]:
        what = f"record-table {self.options['name']!r}" if self.options.get("name") else (
            "record-table")
        BookWarning.RECORD_TABLE.error(f"{what} in {self.env.docname!r}: {message}",
                                       env=self.env, location=self.get_location())
        return []

    def run(self) -> list[nodes.Node]:
        name = self.options.get("name", "")
        if name and (problem := name_problem(name)):
            self.options["name"] = ""
            return self.fail(problem)
        patterns = self.options.get("records", "").split()
        if not patterns:
            return self.fail(":records: is required: the records to show, by their paths under "
                             "source/_records/ (a pattern such as bench/h200/nanovllm_e_bs*.json "
                             "is allowed)")
        columns = []
        for number, line in enumerate((x for x in self.content if x.strip()), start=1):
            match = _COLUMN.match(line.strip())
            if not match or not match["header"]:
                return self.fail(f"column line {number} {line.strip()!r} is not "
                                 "'header = field' or 'header = field | format'")
            columns.append((match["header"], match["field"], match["spec"] or ""))
        if not columns:
            return self.fail("it has no columns; give one line per column: 'header = field' or "
                             "'header = field | format' (fields are dotted paths such as "
                             "results.output_tokens_per_s)")
        try:
            rows, sources = self._rows(patterns, columns)
        except record_files.RecordFileError as error:
            return self.fail(str(error))
        except ValueError as error:  # a format that does not fit its value
            return self.fail(str(error))
        return self._table(columns, rows, sources, " ".join(patterns))

    def _rows(self, patterns: list[str], columns) -> tuple[list[list], list]:
        srcdir = Path(self.env.srcdir)
        root = record_files.records_root(srcdir)
        files: list[Path] = []
        for pattern in patterns:
            if any(c in pattern for c in "*?["):
                folder = root / pattern.rsplit("/", 1)[0] if "/" in pattern else root
                self.env.note_dependency(str(folder))  # a file added there changes the table
            files += record_files.find_all(srcdir, pattern)
        records = []
        for path in files:
            self.env.note_dependency(str(path))
            rel = path.relative_to(root).as_posix()
            records.append((rel, record_files.load(path, rel)))
        sort = self.options.get("sort", "").strip()
        if sort:
            keys = [record_files.scalar(record, sort, rel) for rel, record in records]
            if not (all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys)
                    or all(isinstance(k, str) for k in keys)):
                raise ValueError(f":sort: {sort} must be all numbers or all text, got "
                                 f"{', '.join(map(repr, keys))}")
            records = [r for _, r in sorted(zip(keys, records, strict=True),
                                            key=lambda pair: pair[0])]
        rows = []
        for rel, record in records:
            row = []
            for header, field, spec in columns:
                value = record_files.scalar(record, field, rel)
                row.append((value, self._format(value, spec, header, rel)))
            rows.append(row)
        sources = []
        for rel, record in records:
            where = record_files.provenance(record, rel)
            if where not in sources:
                sources.append(where)
        return rows, sources

    @staticmethod
    def _format(value, spec: str, header: str, rel: str) -> str:
        if value is None:
            return NULL
        try:
            return format_value(value, spec)
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {header!r}: format {spec!r} does not fit {value!r} (from "
                             f"{rel}): {error}") from None

    def _table(self, columns, rows, sources, spec_text: str) -> list[nodes.Node]:
        numeric = [all(isinstance(row[i][0], (int, float)) and not isinstance(row[i][0], bool)
                       for row in rows) for i in range(len(columns))]
        table = nodes.table(classes=["nb-record-table"])
        self.set_source_info(table)
        caption = self.options.get("caption", "")
        title = nodes.title()
        if caption:
            inline, messages = self.parse_inline(caption, lineno=self.lineno)
            title += inline
            title += messages
            title += nodes.Text(" ")
        made = "; ".join(source.words() for source in sources)
        title += nodes.inline("", "", nodes.Text("Records "), nodes.literal(spec_text, spec_text),
                              nodes.Text(f" in source/_records/, measured on {made}."),
                              classes=["nb-record-source"])
        table += title
        group = nodes.tgroup(cols=len(columns))
        table += group
        for i, (header, _, _) in enumerate(columns):
            group += nodes.colspec(colwidth=column_width(header, [row[i][1] for row in rows]))
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        head += self._row([header for header, _, _ in columns], numeric)
        for row in rows:
            body += self._row([shown for _, shown in row], numeric)
        if self.options.get("name"):
            self.add_name(table)
        spec = "|" + "|".join("R" if n else "L" for n in numeric) + "|"
        return [addnodes.tabular_col_spec(spec=spec), table]

    @staticmethod
    def _row(cells: list[str], numeric: list[bool]) -> nodes.row:
        row = nodes.row()
        for text, is_number in zip(cells, numeric, strict=True):
            entry = nodes.entry(classes=["nb-num"] if is_number else [])
            entry += nodes.paragraph("", text)
            row += entry
        return row


def column_width(header: str, cells: list[str]) -> int:
    """A column's width in characters, as the text builder sets it (HTML and LaTeX size their
    columns themselves): its widest cell, and its header wrapped at about 24 characters but
    never inside a word."""
    longest_word = max((len(word) for word in header.split()), default=1)
    return max([longest_word, min(len(header), 24), *(len(cell) for cell in cells)])


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.add_directive("record-table", RecordTableDirective)
    app.add_css_file("nanobook/record-table.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
