// Runs the prefix-cache explorer's hashing in Node: JSON {xxh64, logic, digests, keys} on stdin
// (xxh64, logic: paths of the modules; digests: [{hex: bytes in hex, seed: decimal}]; keys:
// [{tokens, previous: decimal or null, bits}]), JSON {digests: [decimal], keys: [decimal]}
// on stdout. Numbers above 2^53 travel as decimal strings.
import { pathToFileURL } from "node:url";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { xxh64: xxhPath, logic: logicPath, digests, keys } = JSON.parse(input);
const { xxh64 } = await import(pathToFileURL(xxhPath).href);
const { keyFunction } = await import(pathToFileURL(logicPath).href);

const bytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
process.stdout.write(JSON.stringify({
  digests: digests.map((d) => xxh64(bytes(d.hex), BigInt(d.seed)).toString()),
  keys: keys.map((k) => keyFunction(k.bits)(k.tokens, k.previous === null ? null : BigInt(k.previous)).toString()),
}));
