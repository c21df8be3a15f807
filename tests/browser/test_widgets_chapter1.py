"""Chapter 1's widgets in Chromium, operated by keyboard: the tokenizer playground gives the
engine's tokens for what the reader types, the next-token stepper walks the path the reader
picks, and the KV-memory calculator answers for the model and sizes the reader chooses."""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser


def open_widget(widget_site, browser, name):
    base, _ = widget_site
    context, page, problems = visit(browser, f"{base}/widget-{name}.html")
    sim = page.locator(".nb-sim-mount")
    return context, page, problems, sim, json.loads(sim.get_attribute("data-params"))


def test_the_playground_shows_the_engines_tokens_for_typed_text(widget_site, browser):
    from nanobook.sims.tokenizer_playground import engine_tokenizer

    context, page, problems, sim, _ = open_widget(widget_site, browser, "tokenizer-playground")
    field = sim.get_by_role("textbox", name="Text to tokenize")
    text = "JULIET:\nO Romeo, Romeo! 1597"
    field.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("JULIET:")
    page.keyboard.press("Shift+Enter")  # a new line, not an announcement
    page.keyboard.type("O Romeo, Romeo! 1597")
    page.keyboard.press("Enter")
    assert field.input_value() == text
    ids = [int(i) for i in sim.locator(".nb-tok-id").all_text_contents()]
    assert ids == engine_tokenizer().encode(text)
    status = sim.locator("[role=status]").text_content()
    assert status == f"“{text}” is {len(ids)} tokens (28 characters, 5 words)."
    assert sim.locator(".nb-tok-counts").text_content().startswith(
        f"28 characters · 5 words · {len(ids)} tokens")
    # An emoji: four byte tokens, each naming the character it is part of.
    sim.get_by_role("button", name="An emoji").focus()
    page.keyboard.press("Enter")
    chips = sim.locator("li.nb-tok-partial")
    assert chips.count() == 4
    assert chips.first.get_attribute("aria-label") == "Token 1: bytes F0 of “🎭”, id 173"
    assert sim.locator("[role=status]").text_content() == "An emoji: 1 character, 4 tokens."
    assert problems == []
    context.close()


def test_the_stepper_walks_the_path_the_reader_takes(widget_site, browser):
    from nanobook.sims.next_token import walk

    context, page, problems, sim, data = open_widget(widget_site, browser, "next-token")
    status = sim.locator("[role=status]")
    take = {rank: sim.get_by_role("button", name=f"Take {word}", exact=True)
            for rank, word in enumerate(["1st", "2nd", "3rd"])}
    for rank in (1, 2, 0, 0):  # two choices, then the most likely
        take[rank].focus()
        page.keyboard.press("Enter")
    expected = walk(data["promptIds"], [1, 2, 0], 4)
    taken = "".join(data["tokenText"][str(s["chosen"])] for s in expected)
    shown = "".join(sim.locator(".nb-nt-token").all_text_contents())
    assert shown == taken.replace(" ", "␣").replace("\n", "↵")
    prompt = len(data["promptIds"])
    assert status.text_content().startswith("Step 4: took “")
    assert status.text_content().endswith(f"The cache holds {prompt + 3} tokens in each of 6 "
                                          "layers.")
    # After three choices only the most likely token can be taken.
    assert take[1].is_disabled() and take[2].is_disabled() and not take[0].is_disabled()
    # The cache: the prompt and the three tokens before this step, in every layer.
    assert sim.locator(".nb-nt-cell.nb-nt-held").count() == 6 * (prompt + 2)
    assert sim.locator(".nb-nt-cell.nb-nt-new").count() == 6
    back = sim.get_by_role("button", name="Back")
    back.focus()
    page.keyboard.press("Enter")
    assert status.text_content() == "Back to step 3."
    assert take[1].is_disabled()  # the next step, the fourth, takes the most likely token
    page.keyboard.press("Enter")
    assert status.text_content() == "Back to step 2."
    assert not take[1].is_disabled()  # the third step is a choice again
    sim.get_by_role("button", name="Reset").focus()
    page.keyboard.press("Enter")
    assert sim.locator(".nb-nt-token").count() == 0
    assert sim.locator(".nb-nt-cell.nb-nt-held, .nb-nt-cell.nb-nt-new").count() == 0
    assert problems == []
    context.close()


def test_the_calculator_answers_for_the_model_and_sizes_chosen(widget_site, browser):
    from nanobook.sims.kv_memory import plan, value_context

    context, page, problems, sim, _ = open_widget(widget_site, browser, "kv-memory")
    model = sim.get_by_role("combobox", name="Model")
    model.focus()
    model.select_option("meta-llama/Llama-3.1-8B")
    tokens = sim.get_by_role("textbox", name="Tokens per conversation")
    tokens.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("8192")
    page.keyboard.press("Enter")
    expected = plan(value_context(), {"model": "meta-llama/Llama-3.1-8B", "dtype": "bfloat16",
                                      "context": 8192, "requests": 64})
    status = sim.locator("[role=status]").text_content()
    assert status == (f"meta-llama/Llama-3.1-8B, bfloat16: {expected['perToken']:,} bytes per "
                      "token; 64 conversations of 8,192 tokens need 68.7 GB. They fit on H200 "
                      f"SXM. H100 SXM holds {expected['gpus'][0]['fits']}; RTX 4070 Laptop GPU "
                      "cannot hold the weights.")
    cells = [[td.text_content() for td in row.locator("td").all()]
             for row in sim.locator("table.nb-kv-table tbody tr").all()]
    assert [row[4] for row in cells] == ["do not fit", "fit", "weights do not fit"]
    assert [row[5] for row in cells] == [str(g["fits"]) for g in expected["gpus"]]
    assert [row[2] for row in cells] == ["16.1 GB"] * 3  # the weights in bfloat16
    assert problems == []
    context.close()


def test_the_calculator_gives_no_verdict_for_a_mixture_of_experts(widget_site, browser):
    context, page, problems, sim, _ = open_widget(widget_site, browser, "kv-memory")
    model = sim.get_by_role("combobox", name="Model")
    model.focus()
    model.select_option("Qwen/Qwen3-30B-A3B")
    status = sim.locator("[role=status]").text_content()
    assert status.endswith("need 25.8 GB. Its weights are not counted, so no GPU gets a verdict.")
    cells = [[td.text_content() for td in row.locator("td").all()]
             for row in sim.locator("table.nb-kv-table tbody tr").all()]
    assert [row[4] for row in cells] == ["—"] * 3  # no fit / do not fit
    assert [row[5] for row in cells] == ["—"] * 3
    assert "mixture of experts" in sim.locator(".nb-kv-note").text_content()
    # The bundled model is named as such in the list.
    assert sim.locator("option[value='tiny-shakespeare']").text_content() == (
        "tiny-shakespeare (the bundled model)")
    assert problems == []
    context.close()
