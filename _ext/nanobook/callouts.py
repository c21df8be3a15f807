"""Callouts every chapter uses: analogy, why it matters, misconceptions, key takeaways.

Syntax (MyST)::

    :::{analogy} A library's reading room
    Readers get a numbered desk wherever one is free ...
    :::

    :::{why-it-matters}
    Without paging, a server must reserve the longest possible answer for every request ...
    :::

    :::{misconceptions}
    The KV cache stores the model's weights.
    : It stores the keys and values of tokens already processed; the weights are separate and
      shared by every request. Evidence: {value}`kv_bytes_per_token:Qwen/Qwen3-0.6B` bytes per token.
    :::

    :::{takeaways}
    - Memory is handed out in fixed-size blocks.
    - A block table maps a sequence's positions to blocks.
    :::

``analogy`` and ``why-it-matters`` are admonitions (HTML: styled boxes with the
theme's colours, light and dark; LaTeX: Sphinx's ``tip`` and ``important``
boxes). ``misconceptions`` takes myth lines, each followed by ``: `` and the
reality with its evidence; it renders as Myth / Reality pairs. ``takeaways``
takes a bullet list and renders it as a grid of cards (a plain list in the PDF).
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from .entries import EntrySyntaxError, parse_entries
from .warnings import BookWarning


class callout(nodes.Admonition, nodes.Element):
    """An admonition with its own kind (``analogy``, ``why``) and title."""


class _CalloutDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    kind = ""
    label = ""
    latex_style = "note"

    def run(self) -> list[nodes.Node]:
        if not self.content:
            BookWarning.CALLOUT.error(f"{self.name} in {self.env.docname!r} has no text",
                                      env=self.env, location=self.get_location())
            return []
        title = self.label + (f": {self.arguments[0]}" if self.arguments else "")
        node = callout(kind=self.kind, latex_style=self.latex_style,
                       classes=["admonition", f"nb-{self.kind}"])
        self.set_source_info(node)
        inline, messages = self.parse_inline(title, lineno=self.lineno)
        node += nodes.title(title, "", *inline)
        node += messages
        node += self.parse_content_to_nodes()
        return [node]


class AnalogyDirective(_CalloutDirective):
    kind, label, latex_style = "analogy", "Analogy", "tip"


class WhyItMattersDirective(_CalloutDirective):
    kind, label, latex_style = "why", "Why it matters", "important"


def visit_callout_html(self, node: callout) -> None:
    self.body.append(self.starttag(node, "aside", CLASS="", role="note"))


def depart_callout_html(self, node: callout) -> None:
    self.body.append("</aside>\n")


def visit_callout_latex(self, node: callout) -> None:
    from sphinx.util.texescape import escape

    title = node.next_node(nodes.title)
    self.body.append(f"\n\\begin{{sphinxadmonition}}{{{node['latex_style']}}}"
                     f"{{{escape(title.astext())}}}\n")
    for child in node.children:
        if child is not title:
            child.walkabout(self)
    self.body.append("\\end{sphinxadmonition}\n")
    raise nodes.SkipNode


def visit_callout_text(self, node: callout) -> None:
    self.new_state(2)


def depart_callout_text(self, node: callout) -> None:
    self.end_state()


def _label(text: str, cls: str) -> nodes.inline:
    """"Myth" / "Reality": a badge on the web; in the PDF (and plain text) followed by a colon."""
    label = nodes.inline("", "", classes=[cls])
    label += nodes.Text(text)
    label += nodes.inline("", ":", classes=["nb-label-colon"])
    label += nodes.Text(" ")
    return label


class MisconceptionsDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def fail(self, message: str) -> list[nodes.Node]:
        BookWarning.CALLOUT.error(f"misconceptions in {self.env.docname!r}: {message}",
                                  env=self.env, location=self.get_location())
        return []

    def run(self) -> list[nodes.Node]:
        try:
            entries = parse_entries(self.content)
        except EntrySyntaxError as error:
            return self.fail(str(error))
        if not entries:
            return self.fail("no myths; write each on one line, then ': ' and the reality")
        box = nodes.container(classes=["nb-misconceptions"])
        self.set_source_info(box)
        box += nodes.rubric("", self.arguments[0] if self.arguments else "Common misconceptions",
                            classes=["nb-callout-title"])
        pairs = nodes.definition_list(classes=["nb-myths"])
        for entry in entries:
            if not entry.has_body:
                return self.fail(f"myth {entry.head!r} has no reality; write it on the next line "
                                 "after ': '")
            item = nodes.definition_list_item()
            term = nodes.term()
            term += _label("Myth", "nb-myth-label")
            inline, messages = self.parse_inline(entry.head,
                                                 lineno=self.content_offset + entry.offset + 1)
            term += inline
            item += term
            definition = nodes.definition()
            body = self.parse_text_to_nodes(entry.body)
            label = _label("Reality", "nb-reality-label")
            if body and isinstance(body[0], nodes.paragraph):
                body[0].insert(0, label)
            else:
                definition += nodes.paragraph("", "", label)
            definition += body
            definition += messages
            item += definition
            pairs += item
        box += pairs
        return [box]


class TakeawaysDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        parsed = self.parse_content_to_nodes()
        lists = [n for n in parsed if isinstance(n, nodes.bullet_list)]
        if len(lists) != 1 or len(parsed) != 1:
            BookWarning.CALLOUT.error(
                f"takeaways in {self.env.docname!r}: the content must be one bullet list "
                "(one takeaway per item)", env=self.env, location=self.get_location())
            return []
        box = nodes.container(classes=["nb-takeaways"])
        self.set_source_info(box)
        box += nodes.rubric("", self.arguments[0] if self.arguments else "Key takeaways",
                            classes=["nb-callout-title"])
        lists[0]["classes"].append("nb-takeaways-grid")
        box += lists[0]
        return [box]


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.assets")
    app.setup_extension("nanobook.latex_style")
    app.add_node(callout, html=(visit_callout_html, depart_callout_html),
                 latex=(visit_callout_latex, None),
                 text=(visit_callout_text, depart_callout_text))
    app.add_directive("analogy", AnalogyDirective)
    app.add_directive("why-it-matters", WhyItMattersDirective)
    app.add_directive("misconceptions", MisconceptionsDirective)
    app.add_directive("takeaways", TakeawaysDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
