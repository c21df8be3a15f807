// The next-token stepper's logic (chapter 1): walking one path through the page data.
//
// The page data holds, for every path the reader can take, each step's five most likely next
// tokens, as the engine computed them when the book was built, keyed by the ranks chosen so
// far ("" before the first step, "1" after taking the second most likely token, "1.0.2", ...).
// A step shows the top tokens after the prompt and the tokens taken before, takes the one at
// the chosen rank (the most likely once the choices run out), and leaves the prompt and the
// tokens taken before it in the KV cache: the step's own token is stored by the next step.
// Plain module, no DOM; tests/ext/test_simulator_logic.py holds it to the engine.

/** The states of the path that takes ranks `choices` (then the most likely), `steps` long. */
export function walk(data, choices, steps) {
  const ids = [...data.promptIds];
  const ranks = [];
  const states = [];
  for (let step = 0; step < steps; step++) {
    const key = ranks.join(".");
    const top = data.tops[key];
    if (!top) throw new Error(`the page data has no step after the choices "${key}"`);
    const rank = step < choices.length ? choices[step] : 0;
    states.push({ key, top, rank, chosen: top[rank][0], kvTokens: ids.length });
    ids.push(top[rank][0]);
    ranks.push(rank);
  }
  return states;
}

/** The logic test's entry point: { data, choices, stepsShown } -> the path's states. */
export function replay(scenario) {
  return walk(scenario.data, scenario.choices, scenario.stepsShown);
}
