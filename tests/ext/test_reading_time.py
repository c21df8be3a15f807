"""Reading time counts what a reader sees: prose and shown code, not hidden check code."""

from docutils import nodes
from nanobook.executed import check_block, check_output
from nanobook.reading_time import count_words, minutes_for


def check(code: str, output: str, hide_code: bool) -> check_block:
    block = check_block(hide_code=hide_code, hide_output=False)
    block += nodes.literal_block(code, code)
    out = check_output()
    out += nodes.literal_block(output, output)
    block += out
    return block


def test_hidden_check_code_is_not_counted_but_its_output_is():
    page = nodes.section()
    page += nodes.paragraph(text="five words of plain prose")
    page += check("import torch\nprint(torch.ones(3))", "tensor one one one", hide_code=True)
    page += check("x = 1 + 2", "three", hide_code=False)
    # 5 prose + 4 output words of the hidden check + 3 code and 1 output word of the shown one
    assert count_words(page) == 5 + 4 + 3 + 1


def test_minutes_round_up_and_never_reach_zero():
    assert [minutes_for(n) for n in (0, 1, 238, 239)] == [1, 1, 1, 2]
