"""The batching timeline in Chromium: the numbers it shows are those of the engine's scheduler
on the same requests, for every order of the lengths and number of slots the test tries."""

from __future__ import annotations

import json
import math

import pytest
from nanobook.sims import batching_timeline
from nanobook.sims.scheduler_replay import replay

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser


def engine_numbers(lengths, prompt, slots):
    """(steps, idle slots) for static and continuous batching, by the engine's Scheduler."""
    return [batching_timeline.slot_use(
        replay(batching_timeline.scenario(lengths, prompt, slots, b)), slots)
        for b in ("static", "continuous")]


def said(order, slots, numbers):
    (s, si), (c, ci) = numbers
    return (f"Lengths {order}, {slots} slot{'s' if slots > 1 else ''}: static batching {s} "
            f"steps, {si} idle slots; continuous batching {c} steps, {ci} idle slots.")


def test_the_timeline_shows_the_engines_numbers(widget_site, browser):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/widget-batching-timeline.html")
    sim = page.locator(".nb-sim-mount")
    data = json.loads(sim.get_attribute("data-params"))
    lengths, prompt = data["outputLengths"], data["promptLength"]
    status = sim.locator("[role=status]")
    assert status.text_content() == ""  # nothing is announced before the reader acts
    summaries = sim.locator(".nb-bt-summary")
    numbers = engine_numbers(lengths, prompt, 4)
    assert summaries.all_text_contents() == [f"{n} steps, {i} idle slots." for n, i in numbers]
    sim.get_by_role("button", name="Run both").focus()
    page.keyboard.press("Enter")
    assert status.text_content() == said("as listed", 4, numbers)
    # Sorted longest first, static batching wastes less; equal lengths, nothing to choose.
    order = sim.get_by_label("Output lengths")
    order.select_option("sorted")
    assert status.text_content() == said(
        "sorted, longest first", 4, engine_numbers(sorted(lengths, reverse=True), prompt, 4))
    order.select_option("equal")
    mean = math.floor(sum(lengths) / len(lengths) + 0.5)  # as JavaScript's Math.round
    equal = engine_numbers([mean] * len(lengths), prompt, 4)
    assert equal[0] == equal[1] and status.text_content() == said(
        "all of the mean length", 4, equal)
    # One slot: both serve one request at a time.
    order.select_option("given")
    slots = sim.get_by_label("Slots per step")
    slots.fill("1")
    slots.press("Enter")
    one = engine_numbers(lengths, prompt, 1)
    assert one[0] == one[1] == (sum(lengths), 0)
    assert status.text_content() == said("as listed", 1, one)
    # Each request finishes where the engine's run says.
    rows = sim.locator("table.nb-bt-table tbody tr")
    assert rows.count() == len(lengths)
    assert problems == []
    context.close()
