"""The prefix-cache explorer in Chromium, by keyboard: prompts typed and tokenized in the page
give the engine's hits, block tables and free list; the example steps through the engine's run;
narrow keys collide and the lookup turns the match into a miss."""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser

SYSTEM = "You are Friar Laurence. Answer in one line, in verse.\n"


def open_widget(widget_site, browser):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/widget-prefix-cache.html")
    sim = page.locator(".nb-sim-mount")
    page.wait_for_function("document.querySelector('.nb-pc-lookup') !== null")
    return context, page, problems, sim, json.loads(sim.get_attribute("data-params"))


def engine_states(data: dict, ops: list[dict], key_bits: int | None = None) -> list[dict]:
    from nanobook.sims.prefix_cache import replay

    return replay({"numBlocks": data["numBlocks"], "blockSize": data["blockSize"],
                   "keyBits": key_bits or data["keyBits"], "ops": ops})


def engine_tokens(text: str) -> list[int]:
    from nanobook.sims.prefix_cache import bundled_folder

    from nanovllm.utils.tokenizer import Tokenizer

    return Tokenizer(bundled_folder()).encode(text)


def shown(sim) -> dict:
    """The block tables and the free list as the widget shows them."""
    tables = {}
    for item in sim.locator("ul.nb-pc-requests > li:has(strong)").all():
        chips = item.locator("ol.nb-pc-table > li").all_text_contents()
        tables[item.locator("strong").first.text_content()] = [int(c) for c in chips]
    free = [int(c.split()[0]) for c in sim.locator("ol.nb-pc-free > li").all_text_contents()
            if c != "empty"]
    cached = [int(c.split()[0]) for c in
              sim.locator("ol.nb-pc-free > li.nb-pc-free-cached").all_text_contents()]
    return {"tables": tables, "freeList": free, "cachedFree": cached}


def expected(state: dict) -> dict:
    return {"tables": state["tables"], "freeList": state["freeList"],
            "cachedFree": [b for b in state["freeList"] if state["cached"][b]]}


def submit(page, sim, text: str) -> str:
    field = sim.get_by_role("textbox", name="Prompt")
    field.focus()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    for i, line in enumerate(text.split("\n")):
        if i:
            page.keyboard.press("Shift+Enter")
        page.keyboard.type(line)
    page.keyboard.press("Enter")
    return sim.locator("[role=status]").text_content()


def test_typed_prompts_get_the_engines_hits_tables_and_free_list(widget_site, browser):
    context, page, problems, sim, data = open_widget(widget_site, browser)
    page.wait_for_selector(".nb-pc[data-tokenizer=ready]")
    texts = [SYSTEM + "Q: Where is Romeo?\nA:", SYSTEM + "Q: Who loves Juliet?\nA:"]
    ops = []
    for name, text in zip("AB", texts, strict=True):
        said = submit(page, sim, text)
        ops.append({"op": "submit", "seq": name, "tokens": engine_tokens(text)})
        state = engine_states(data, ops)[-1]
        hits = state["hits"]
        assert said.startswith(f"Submitted {name}: “{SYSTEM}") and (
            f"{len(hits)} blocks from the cache ({', '.join(map(str, hits[:-1]))} and "
            f"{hits[-1]})" in said if hits else "no block from the cache" in said), said
        assert shown(sim) == expected(state)
    assert len(engine_states(data, ops)[-1]["hits"]) > 0  # B shares the system prompt
    # Finish A, then B, with the request select and the Finish button.
    for name in "AB":
        sim.get_by_role("combobox", name="Request").select_option(name)
        sim.get_by_role("button", name="Finish").focus()
        page.keyboard.press("Enter")
        ops.append({"op": "finish", "seq": name})
        state = engine_states(data, ops)[-1]
        assert sim.locator("[role=status]").text_content().startswith(f"Finished {name}: ")
        assert shown(sim) == expected(state)
    # Every full block of both prompts waits at the back of the free list, key and all.
    assert state["freeList"][-5:] == [4, 3, 2, 1, 0] and all(state["cached"][:5])
    assert problems == []
    context.close()


def test_the_example_is_the_engines_run_step_by_step(widget_site, browser):
    context, page, problems, sim, data = open_widget(widget_site, browser)
    example = data["example"]
    states = engine_states(data, example["ops"])
    button = sim.locator("button.nb-pc-example")
    button.focus()
    for number, (step, state) in enumerate(zip(example["ops"], states, strict=True), start=1):
        assert button.text_content() == ("Step through the example" if number == 1
                                         else f"Example step {number} of {len(states)}")
        page.keyboard.press("Enter")
        assert shown(sim) == expected(state), number
        said = sim.locator("[role=status]").text_content()
        assert said.startswith(("Submitted " if step["op"] == "submit" else "Finished ")
                               + step["seq"]), said
    assert button.text_content() == "Restart the example"
    # The last step, E: A's prompt again, finds all of A's blocks but the one D reused.
    verdicts = sim.locator("ol.nb-pc-lblocks > li .nb-pc-verdict").all_text_contents()
    hits = states[-1]["hits"]
    assert verdicts[: len(hits)] == [f"hit: block {b}" for b in hits]
    assert verdicts[len(hits)].startswith("no block has this block key: miss")
    assert problems == []
    context.close()


def colliding_pair(block_size: int) -> tuple[str, str]:
    """Two prompts whose first blocks differ but whose 4-bit keys are equal."""
    from nanobook.sims.prefix_cache import key_function

    key = key_function(4)
    seen = {}
    for i in range(200):
        text = f"{i} {i + 1} {i + 2} {i + 3}, said the nurse."
        first = tuple(engine_tokens(text)[:block_size])
        seen.setdefault(key(first, None), []).append((first, text))
        for other_first, other in seen[key(first, None)]:
            if other_first != first:
                return other, text
    raise AssertionError("no pair of prompts with equal 4-bit keys")


def test_narrow_keys_collide_and_the_lookup_misses(widget_site, browser):
    context, page, problems, sim, data = open_widget(widget_site, browser)
    page.wait_for_selector(".nb-pc[data-tokenizer=ready]")
    width = sim.get_by_role("combobox", name="Block-key width")
    width.focus()
    width.select_option("4")
    assert "Block keys now keep 4 bits" in sim.locator("[role=status]").text_content()
    first, second = colliding_pair(data["blockSize"])
    submit(page, sim, first)
    said = submit(page, sim, second)
    ops = [{"op": "submit", "seq": n, "tokens": engine_tokens(t)}
           for n, t in (("A", first), ("B", second))]
    state = engine_states(data, ops, key_bits=4)[-1]
    assert state["lookups"][0]["verdict"] == "other content" and state["hits"] == []
    assert "A block key matched block 0, which holds other content: a miss, not a wrong hit." in said
    verdict = sim.locator("ol.nb-pc-lblocks > li .nb-pc-verdict").first.text_content()
    assert verdict.startswith("block key found, but block 0 holds other content: miss")
    assert shown(sim) == expected(state)
    assert problems == []
    context.close()
