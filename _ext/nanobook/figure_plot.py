"""``{figure-plot}``: a figure drawn with matplotlib when the book is built.

Syntax (MyST)::

    ```{figure-plot}
    :alt: Line chart of output tokens per second against batch size ...
    :caption: Throughput of workload (e) on one H200.
    :name: batch-sweep
    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    runs = [record(f"bench/h200/nanovllm_e_bs{n}.json") for n in sizes]
    ax = figure.subplots()
    ax.plot(sizes, [r["results"]["output_tokens_per_s"] for r in runs], label="nano-vLLM")
    ```

The content is Python that draws on ``figure``, a matplotlib ``Figure`` in the book's style
(``nanobook.plot_style``). It also has ``record(path)``, which reads a JSON record under
``source/_records/`` (the rules of ``nanobook.record_files``); ``model(name)``, the engine's
``ModelConfig`` of a model named as ``{value}`` names them (``Qwen/Qwen3-0.6B``,
``tiny-shakespeare``) for the roofline's functions; ``palette`` (the seven
Okabe-Ito colours), ``colors`` (``text``, ``muted``, ``grid``, ``background``) and
``markers``; and ``book`` (``book.shared`` keeps a loaded model for the whole build). Series
drawn without a colour take the palette and a marker in turn.

Options:

``:alt:``       required: what the figure shows, for a reader who cannot see it (the build
                fails without it).
``:caption:``   the caption under the figure (inline markup allowed).
``:name:``      the figure's anchor and label (see ``nanobook.names``).
``:depends:``   more files the drawing depends on (globs under the engine root).
``:size:``      width x height in inches (default 6.4x3.6).
``:timeout:``   seconds the code may run (default 60).

Why a directive of ours rather than matplotlib's ``plot`` directive: it requires alt text, it
makes the page depend on what the drawing read (the records it opened, the engine files its
imports reach, ``:depends:``), so the figure is redrawn when its data changes; and it renders
per builder: inline SVG whose colours are the theme's CSS variables on the web (one drawing
serves light and dark mode), a vector PDF in the LaTeX build. matplotlib's directive writes
image files in fixed colours, links their sources and leaves alt text optional.

The code runs as a check's does (``nanobook.executed.run_code``: its own namespace, the time
limit, Ctrl-C honoured); a failure is an error naming the page and the figure.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_id

from . import model_values, plot_style, record_files
from .book import book
from .engine_source import engine_packages, engine_root, files_reached
from .executed import DEFAULT_TIMEOUT, MAX_TIMEOUT, run_code
from .html_attr import attr
from .names import name_problem
from .values import ValueContext
from .warnings import BookWarning

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*$")
SIZE_LIMITS = ((2.0, 12.0), (1.5, 10.0))  # inches: width, height


class plot_figure(nodes.General, nodes.Element):
    """A drawn figure: ``svg`` (web), ``pdf`` (bytes, LaTeX), ``alt``; children: the caption."""


class FigurePlotDirective(SphinxDirective):
    has_content = True
    option_spec = {
        "alt": directives.unchanged,
        "caption": directives.unchanged,
        "name": directives.unchanged,
        "depends": directives.unchanged,
        "size": directives.unchanged,
        "timeout": directives.unchanged,
    }

    def label(self) -> str:
        return f"{self.options['name']!r}" if self.options.get("name") else f"#{self._index}"

    def fail(self, message: str) -> list[nodes.Node]:
        BookWarning.FIGURE.error(f"figure-plot {self.label()} in {self.env.docname!r}: {message}",
                                 env=self.env, location=self.get_location())
        return []

    def run(self) -> list[nodes.Node]:
        self._index = self.env.temp_data.get("nanobook_plots", 0) + 1
        self.env.temp_data["nanobook_plots"] = self._index
        name = self.options.get("name", "")
        if name and (problem := name_problem(name)):
            self.options["name"] = ""
            return self.fail(problem)
        alt = " ".join(self.options.get("alt", "").split())
        if not alt:
            return self.fail(":alt: is required: say what the figure shows for a reader who "
                             "cannot see it (what is plotted against what, and what it shows)")
        size = self._size()
        if isinstance(size, str):
            return self.fail(size)
        timeout = self.options.get("timeout", str(DEFAULT_TIMEOUT))
        if not (timeout.isdigit() and 1 <= int(timeout) <= MAX_TIMEOUT):
            return self.fail(f":timeout: {timeout!r} is not allowed; give whole seconds, from 1 "
                             f"to {MAX_TIMEOUT} (the default is {DEFAULT_TIMEOUT})")
        code = "\n".join(self.content).strip("\n") + "\n"
        if not code.strip():
            return self.fail("it has no code; draw on `figure` (figure.subplots() gives axes)")
        try:
            compile(code, "<figure-plot>", "exec")
        except SyntaxError as error:
            return self.fail(f"the code does not parse: {error.msg} (line {error.lineno})")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return self.fail("matplotlib is not installed; pip install -e '.[docs]'")
        fig_id = name or make_id(self.env, self.state.document, "plot", f"{self._index}")
        try:
            svg, pdf = self._draw(code, size, int(timeout), fig_id, alt)
        except _DrawingFailed as failure:
            return self.fail(str(failure))
        node = plot_figure(svg=svg, pdf=pdf, alt=alt, ids=[fig_id])
        self.set_source_info(node)
        if name:
            self.add_name(node)
        caption = self.options.get("caption", "")
        if caption:
            inline, messages = self.parse_inline(caption, lineno=self.lineno)
            node += nodes.paragraph("", "", *inline, classes=["nb-plot-caption"])
            node += messages
        return [node]

    def _size(self) -> tuple[float, float] | str:
        raw = self.options.get("size")
        if raw is None:
            return plot_style.SIZE
        match = _SIZE.match(raw)
        (wmin, wmax), (hmin, hmax) = SIZE_LIMITS
        if not match or not (wmin <= float(match[1]) <= wmax and hmin <= float(match[2]) <= hmax):
            return (f":size: {raw!r} is not allowed; give WIDTHxHEIGHT in inches, width {wmin:g} "
                    f"to {wmax:g}, height {hmin:g} to {hmax:g} (the default is "
                    f"{plot_style.SIZE[0]}x{plot_style.SIZE[1]})")
        return float(match[1]), float(match[2])

    def _draw(self, code: str, size, timeout: int, fig_id: str, alt: str) -> tuple[str, bytes]:
        import matplotlib
        from matplotlib.figure import Figure

        read: list[Path] = []

        def record(path: str) -> dict:
            """A record under source/_records/, by its path there; the figure depends on it."""
            found = record_files.find(self.env.srcdir, path)
            read.append(found)
            return record_files.load(found, path)

        def model(name: str):
            """The engine's ModelConfig of a model named as {value} names it (a dense one)."""
            ctx = ValueContext(engine_root(self.config), self.config, srcdir=Path(self.env.srcdir))
            try:
                return model_values.engine_config(ctx, name)[1]
            finally:
                read.extend(ctx.used_files)

        with matplotlib.rc_context(plot_style.rc(size)):
            figure = Figure()
            namespace = {"__name__": "__main__", "book": book, "figure": figure,
                         "record": record, "model": model, "palette": list(plot_style.PALETTE),
                         "colors": dict(plot_style.COLORS), "markers": list(plot_style.MARKERS)}
            outcome = run_code(code, namespace, f"<{self.env.docname}: figure-plot "
                               f"{self.label()}>", timeout=timeout)
            self._note_dependencies(code, read)
            if outcome.error.startswith("raised RecordFileError"):
                raise _DrawingFailed(f"the code {outcome.error}")  # the record is the problem
            if outcome.error:
                raise _DrawingFailed(f"the code {outcome.error}\n{outcome.output}".rstrip())
            if not figure.axes:
                raise _DrawingFailed("the code drew nothing on `figure`; draw on the figure it "
                                     "is given (ax = figure.subplots()), not on a new one")
            try:
                return rendered(figure, fig_id, alt)
            except plot_style.PlotColourError as error:
                raise _DrawingFailed(str(error)) from None

    def _note_dependencies(self, code: str, read: list[Path]) -> None:
        """The page is read again when a record, an engine file or the style changes."""
        root = engine_root(self.config)
        depends = self.options.get("depends", "").split()
        for rel in files_reached(root, engine_packages(self.config), [code], depends):
            self.env.note_dependency(str(root / rel))
        for path in read:
            self.env.note_dependency(str(path))
        self.env.note_dependency(plot_style.__file__)


class _DrawingFailed(Exception):
    pass


def rendered(figure, fig_id: str, alt: str) -> tuple[str, bytes]:
    """The figure as themed inline SVG (web) and as PDF bytes (LaTeX); PlotColourError for a
    colour outside the book's palette."""
    svg_out, pdf_out = io.StringIO(), io.BytesIO()
    figure.savefig(svg_out, format="svg", metadata={"Date": None})
    figure.savefig(pdf_out, format="pdf", metadata={"CreationDate": None, "ModDate": None})
    return plot_style.themed_svg(svg_out.getvalue(), fig_id, alt), pdf_out.getvalue()


def drawn_figure(draw, fig_id: str, alt: str, caption: str = "",
                 size: tuple[float, float] = plot_style.SIZE) -> plot_figure:
    """A figure node drawn by ``draw(figure)`` in the book's style, for the static form of a
    simulator: the same node, web and PDF, as ``{figure-plot}`` makes."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(plot_style.rc(size)):
        figure = Figure()
        draw(figure)
        svg, pdf = rendered(figure, fig_id, alt)
    node = plot_figure(svg=svg, pdf=pdf, alt=alt, ids=[fig_id])
    if caption:
        node += nodes.paragraph("", caption, classes=["nb-plot-caption"])
    return node


# -- HTML ------------------------------------------------------------------------------------------

def visit_plot_html(self, node: plot_figure) -> None:
    self.body.append(f'<figure class="nb-plot" id="{attr(node["ids"][0])}">'
                     f'<div class="nb-plot-drawing">{node["svg"]}</div>')
    for child in node.children:
        if isinstance(child, nodes.paragraph):
            self.body.append("<figcaption>")
            for grandchild in child.children:
                grandchild.walkabout(self)
            self.body.append("</figcaption>")
    self.body.append("</figure>\n")
    raise nodes.SkipNode


# -- LaTeX -----------------------------------------------------------------------------------------

def pdf_name(node: plot_figure) -> str:
    return f"nb-plot-{hashlib.sha256(node['pdf']).hexdigest()[:16]}.pdf"


def visit_plot_latex(self, node: plot_figure) -> None:
    """A vector PDF, not floating (it stays by the text that discusses it), with its caption."""
    name = pdf_name(node)
    (Path(self.builder.outdir) / name).write_bytes(node["pdf"])
    self.body.append("\n\\begin{center}\\begin{minipage}{\\linewidth}\\centering\n"
                     f"\\includegraphics[width=\\linewidth]{{{name}}}\n")
    captions = [c for c in node.children if isinstance(c, nodes.paragraph)]
    if captions:
        self.body.append("\\captionof{figure}{")
        for child in captions[0].children:
            child.walkabout(self)
        self.body.append("}")
    self.body.append(self.hypertarget_to(node))
    self.body.append("\n\\end{minipage}\\end{center}\n")
    raise nodes.SkipNode


def visit_plot_text(self, node: plot_figure) -> None:
    """Builders without images (text, man, texinfo) give the alt text and the caption."""
    node.insert(0, nodes.paragraph("", f"[Figure: {node['alt']}]"))


def depart_pass(self, node) -> None:
    pass


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.engine_source")
    # The code runs as checks do: the engine importable from its root, ``book`` for the build.
    app.setup_extension("nanobook.executed")
    app.add_node(plot_figure, html=(visit_plot_html, None), latex=(visit_plot_latex, None),
                 text=(visit_plot_text, depart_pass), man=(visit_plot_text, depart_pass),
                 texinfo=(visit_plot_text, depart_pass))
    app.add_directive("figure-plot", FigurePlotDirective)
    app.add_css_file("nanobook/figure-plot.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
