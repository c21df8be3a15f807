"""The next-token stepper of chapter 1 shows what the engine does: its greedy path is the text
``LLM.generate`` produces at temperature 0, and its page data holds every step of the 27 paths."""

from __future__ import annotations

from nanobook.sims import next_token


def test_the_greedy_path_is_what_generate_produces_at_temperature_zero():
    from nanovllm import SamplingParams

    engine = next_token.engine()
    steps = next_token.PARAMS["steps"].default
    ids = engine.tokenizer.encode(next_token.DEFAULT_PROMPT)
    greedy = [s["chosen"] for s in next_token.walk(ids, [], steps)]
    engine.add_request(next_token.DEFAULT_PROMPT,
                       SamplingParams(temperature=0, max_tokens=steps, ignore_eos=True))
    generated = []
    while not engine.is_finished():
        generated += [token for _, token in engine.step().sampled]
    assert greedy == generated


def test_the_page_data_holds_every_step_of_the_27_paths():
    data = next_token.data({key: p.default for key, p in next_token.PARAMS.items()})
    steps = data["steps"]
    assert steps == 15
    # 1 + 3 + 9 steps with a choice, then 27 paths of 12 greedy steps
    assert len(data["tops"]) == 1 + 3 + 9 + 27 * (steps - 3)
    assert all(len(top) == 5 for top in data["tops"].values())
    for top in data["tops"].values():
        probabilities = [p for _, p in top]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert data["layers"] == 6 and data["kvBytesPerToken"] == 6144 and data["dtype"] == "float32"
    ends = {"".join(data["tokenText"][str(s["chosen"])]
                    for s in next_token.walk(data["promptIds"], [a, b, c], steps))
            for a in range(3) for b in range(3) for c in range(3)}
    assert len(ends) == 27  # 27 different texts


def test_the_kv_cache_holds_the_prompt_after_the_first_step_and_grows_by_one():
    data = next_token.data({key: p.default for key, p in next_token.PARAMS.items()})
    states = next_token.walk(data["promptIds"], [2, 1, 0], 5)
    prompt = len(data["promptIds"])
    assert [s["kvTokens"] for s in states] == [prompt, prompt + 1, prompt + 2, prompt + 3,
                                               prompt + 4]
    assert [s["rank"] for s in states] == [2, 1, 0, 0, 0]
    assert [s["key"] for s in states] == ["", "2", "2.1", "2.1.0", "2.1.0.0"]


def test_the_printed_table_shows_the_cache_growing_step_by_step():
    from docutils import nodes

    params = {key: p.default for key, p in next_token.PARAMS.items()}
    caption, table = next_token.static_form(params, next_token.data(params))
    rows = [[entry.astext() for entry in row.children] for row in table.findall(nodes.row)]
    assert rows[0] == ["Step", "Five most likely next tokens", "Taken", "KV cache (tokens)"]
    assert [row[3] for row in rows[1:4]] == ["8", "9", "10"]
    assert len(rows) == 1 + 15
    assert "in each of the model's 6 layers once the step has run" in caption.astext()
