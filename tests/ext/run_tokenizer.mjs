// Runs the book's JavaScript tokenizer in Node: JSON {module, tokenizer, texts, decode} on
// stdin (module: path of bpe.js; tokenizer: path of a tokenizer.json; texts: strings to
// encode; decode: lists of ids to decode), JSON {encoded: [{ids, tokens}], pretokens:
// [[byte-level pre-token]], decoded: [text]} on stdout. A tokenizer.json the module refuses ends the run with its message on stderr.
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { module, tokenizer, texts, decode } = JSON.parse(input);
const { ByteLevelBPE, bytesToChars, preTokenize } = await import(pathToFileURL(module).href);
let bpe;
try {
  bpe = new ByteLevelBPE(JSON.parse(await readFile(tokenizer, "utf8")));
} catch (error) {
  console.error(error.message);
  process.exit(3);
}
process.stdout.write(JSON.stringify({
  encoded: texts.map((text) => bpe.encode(text)),
  pretokens: texts.map((text) => preTokenize(text).map(bytesToChars)),
  decoded: decode.map((ids) => bpe.decode(ids)),
  vocabSize: bpe.vocabSize,
}));
