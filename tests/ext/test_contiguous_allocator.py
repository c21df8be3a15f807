"""The paged allocator widget's contiguous side (``contiguous.js``) against the slot-by-slot
reference (``contiguous_reference.py``) on the same generated scenarios, step by step."""

from __future__ import annotations

import random

import pytest

from tests.ext.contiguous_reference import replay as reference_replay
from tests.ext.test_simulator_logic import STATIC, run_in_node

MODULE = "sim/paged-allocator/contiguous.js"


def scenarios(seed: int, count: int) -> list[dict]:
    """Small arenas; adds that fit, do not fit, or fit only in a hole; grows past the end."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        size = rng.randint(1, 48)
        ops, alive, made = [], [], 0
        for _ in range(rng.randint(1, 40)):
            roll = rng.random()
            if not alive or roll < 0.4:
                name, made = f"S{made}", made + 1
                tokens = rng.randint(1, max(1, size // 2))
                reserve = tokens + rng.randint(0, size // 2)
                ops.append({"op": "add", "seq": name, "tokens": tokens, "reserve": reserve})
                if reference_replay({"numSlots": size, "ops": ops})[-1]["ok"]:
                    alive.append(name)
            elif roll < 0.75:
                ops.append({"op": "grow", "seq": rng.choice(alive), "tokens": rng.randint(1, 6)})
            else:
                name = alive.pop(rng.randrange(len(alive)))
                ops.append({"op": "finish", "seq": name})
        out.append({"numSlots": size, "ops": ops})
    return out


def test_contiguous_logic_matches_the_reference_step_by_step():
    cases = scenarios(seed=20261129, count=300)
    expected = [reference_replay(s) for s in cases]
    got = run_in_node(MODULE, cases)
    for scenario, js, py in zip(cases, got, expected, strict=True):
        assert js == py, scenario
    states = [state for run in expected for state in run]
    # The cases worth comparing are reached: a refusal although enough slots are free in all,
    # a grow refused at the end of a reservation, and holes reused.
    assert any(not state["ok"] and op["op"] == "add"
               and sum(h[1] for h in state["holes"]) >= op["reserve"]
               for run, s in zip(expected, cases, strict=True)
               for state, op in zip(run, s["ops"], strict=True))
    assert any(not state["ok"] and op["op"] == "grow"
               for run, s in zip(expected, cases, strict=True)
               for state, op in zip(run, s["ops"], strict=True))
    assert sum(len(s["holes"]) > 1 for s in states) > 100


@pytest.mark.parametrize("wrong", [
    # best fit instead of first fit
    ("const hole = holes().find(([, length]) => length >= reserve);",
     "const hole = holes().filter(([, l]) => l >= reserve).sort((a, b) => a[1] - b[1])[0];"),
    # a grow may run past the reservation
    ("if (region.tokens + tokens > region.size) return false;", ""),
])
def test_the_comparison_sees_a_difference(tmp_path, wrong):
    line, replacement = wrong
    source = (STATIC / MODULE).read_text()
    assert source.count(line) == 1
    module = tmp_path / "contiguous.js"
    module.write_text(source.replace(line, replacement))
    cases = scenarios(seed=7, count=200)
    try:
        got = run_in_node(str(module), cases)
    except AssertionError as error:  # it diverged so far that a later step names a lost region
        assert "no sequence" in str(error)
        return
    assert got != [reference_replay(s) for s in cases]
