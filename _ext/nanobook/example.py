"""``{example}``: show a piece of MyST source, then what it renders to.

For the authoring guide ("How this book is built"): the source shown is the
source rendered, so the guide cannot drift from what the directives do::

    `````{example}
    ````{check}
    print(1 + 1)
    ````
    `````
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class ExampleDirective(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        source = "\n".join(self.content)
        box = nodes.container(classes=["nb-example"])
        self.set_source_info(box)
        label = self.arguments[0] if self.arguments else "Source"
        box += nodes.paragraph("", label, classes=["nb-example-label"])
        literal = nodes.literal_block(source, source, language="markdown",
                                      classes=["nb-example-source"])
        self.set_source_info(literal)
        box += literal
        box += nodes.paragraph("", "Result", classes=["nb-example-label"])
        result = nodes.container(classes=["nb-example-result"])
        result += self.parse_content_to_nodes()
        box += result
        return [box]


def setup(app: Sphinx) -> dict:
    app.add_directive("example", ExampleDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
