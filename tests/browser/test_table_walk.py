"""The block-table walk in Chromium: looking a position up and stepping through one decode
attention's tiles, by keyboard, against the table the engine made at build time."""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser


def runs(values: list[int]) -> str:
    """'0–11, 28–31': consecutive numbers joined, as the widget says them."""
    spans: list[list[int]] = []
    for v in values:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in spans)


def test_a_position_and_the_tiles_by_keyboard(widget_site, browser):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/widget-block-table-walk.html")
    sim = page.locator(".nb-sim-mount")
    data = json.loads(sim.get_attribute("data-params"))
    table, bs = data["table"], data["blockSize"]
    assert (data["contextLen"], bs, data["tile"], data["numSplits"]) == (37, 4, 16, 2)
    status = sim.locator("[role=status]")
    assert status.text_content() == ""  # nothing is announced before the reader acts

    field = sim.get_by_role("textbox", name="Position")
    field.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("21")
    page.keyboard.press("Enter")
    block = table[21 // bs]
    assert status.text_content() == (f"Position 21: table entry 5 holds block {block}; offset 1; "
                                     f"slot {block * bs + 1}.")
    assert sim.locator(".nb-btw-slot-hit").all_text_contents() == [str(block * bs + 1)]

    sim.get_by_role("button", name="Step", exact=True).focus()
    page.keyboard.press("Enter")
    blocks = ", ".join(str(b) for b in table[:4])
    slots = runs([table[p // bs] * bs + p % bs for p in range(16)])
    assert status.text_content() == (f"Tile 1 of 3, piece 0: positions 0 to 15 from blocks "
                                     f"{blocks}, slots {slots}.")
    rows = sim.locator("table.nb-btw-rows tbody tr")
    assert rows.count() == 16
    assert rows.nth(5).locator("td").all_text_contents() == [
        "5", "1", str(table[1]), "1", str(table[1] * bs + 1)]
    # Piece 0 covers two whole tiles (0-31); piece 1 holds the rest, 32-36.
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert status.text_content().startswith("Tile 3 of 3, piece 1: positions 32 to 36 from ")
    assert rows.count() == 5
    page.keyboard.press("Enter")
    assert status.text_content() == "Combine: the 2 pieces' partial results are weighed into one."
    slider = sim.get_by_role("slider", name="Tile")
    slider.focus()
    page.keyboard.press("Home")
    assert status.text_content() == "Before the first tile: 3 tiles in 2 pieces."
    assert sim.locator(".nb-btw-reading").count() == 0
    assert problems == []
    context.close()
