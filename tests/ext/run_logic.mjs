// Runs a simulator's logic module on scenarios: JSON {module, scenarios} on stdin,
// JSON [states of scenario 0, states of scenario 1, ...] on stdout.
// The module must export replay(scenario) -> [state after each step].
import { pathToFileURL } from "node:url";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { module, scenarios } = JSON.parse(input);
const logic = await import(pathToFileURL(module).href);
if (typeof logic.replay !== "function") {
  console.error(`${module} does not export replay(scenario)`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(scenarios.map((s) => logic.replay(s))));
