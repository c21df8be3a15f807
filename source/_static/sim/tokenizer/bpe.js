// A byte-level BPE tokenizer that reads a Hugging Face tokenizer.json and turns text into the
// same token ids as the `tokenizers` library (the engine's tokenizer), and ids back into text.
//
// It implements what the bundled model's tokenizer.json asks for, and refuses any other
// setting by name, so it never tokenizes differently without saying so:
//
//   added_tokens   found in the raw text first (leftmost, longest), each one token of its own;
//                  the text between them is tokenized piece by piece;
//   normalizer     null: the text is used as it is;
//   pre_tokenizer  ByteLevel with use_regex: split by GPT-2's pattern (below), then every
//                  UTF-8 byte becomes one printable character (bytesToChars);
//   model          BPE: in each piece, merge the adjacent pair with the lowest merge rank,
//                  the leftmost among equals, until no pair has a merge;
//   decoder        ByteLevel: characters back to bytes, bytes to text as UTF-8, each invalid
//                  byte sequence shown as U+FFFD.
//
// The GPT-2 pattern is the one the `tokenizers` library compiles for ByteLevel (the JSON names
// the pre-tokenizer, not its pattern):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// The library's regex engine (Oniguruma) reads \s as Unicode's White_Space property, which
// differs from JavaScript's \s (U+0085 is white space there and U+FEFF is not), so the
// pattern below spells \s as \p{White_Space}. Letters (\p{L}) and numbers (\p{N}) come from
// the browser's Unicode tables; a character that only a newer Unicode than the library's
// assigns may be classed differently (tests/ext/test_tokenizer_js.py compares the two on
// characters that Unicode 14 assigns).
//
// Plain module, no DOM: the simulators load it in the browser and the tests run it in Node.

const SPACE = "\\p{White_Space}";
const GPT2_PATTERN = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${SPACE}\\p{L}\\p{N}]+|${SPACE}+(?!\\P{White_Space})|${SPACE}+`,
  "gu");

/** Byte -> printable character, as GPT-2 maps them: printable Latin-1 bytes stand for
 * themselves, the others take the characters from U+0100 on, in byte order. */
function byteCharTable() {
  const chars = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCodePoint(printable ? b : next++);
  }
  return chars;
}

const BYTE_CHARS = byteCharTable();
const CHAR_BYTES = new Map(BYTE_CHARS.map((c, b) => [c, b]));
const ENCODER = new TextEncoder();

/** The byte-level form of a piece of text: one character per UTF-8 byte. */
export function bytesToChars(text) {
  let out = "";
  for (const b of ENCODER.encode(text)) out += BYTE_CHARS[b];
  return out;
}

/** The bytes a token stands for: its characters mapped back through the byte table, or, when
 * one of them is not in the table (an added token such as "<|endoftext|>" may hold any
 * character), the token's own UTF-8 bytes, as the ByteLevel decoder does. */
export function tokenToBytes(token) {
  const bytes = [];
  for (const c of token) {
    const b = CHAR_BYTES.get(c);
    if (b === undefined) return ENCODER.encode(token);
    bytes.push(b);
  }
  return Uint8Array.from(bytes);
}

function refuse(where, value, allowed) {
  throw new Error(`tokenizer.json: ${where} is ${JSON.stringify(value)}; this tokenizer reads ${allowed}`);
}

function checkSettings(json) {
  if (json === null || typeof json !== "object") throw new Error("tokenizer.json: not a JSON object");
  if (json.normalizer !== null && json.normalizer !== undefined) refuse("normalizer", json.normalizer, "null only");
  const pre = json.pre_tokenizer;
  if (!pre || pre.type !== "ByteLevel" || pre.use_regex === false) {
    refuse("pre_tokenizer", pre, 'a ByteLevel pre-tokenizer with "use_regex": true');
  }
  if (json.decoder?.type !== "ByteLevel") refuse("decoder", json.decoder, "a ByteLevel decoder");
  if (json.post_processor !== null && json.post_processor !== undefined && json.post_processor.type !== "ByteLevel") {
    refuse("post_processor", json.post_processor, "null or ByteLevel (which changes offsets only)");
  }
  const model = json.model;
  if (model?.type !== "BPE") refuse("model.type", model?.type, "BPE");
  for (const [key, allowed] of [["dropout", null], ["continuing_subword_prefix", null],
    ["end_of_word_suffix", null], ["byte_fallback", false]]) {
    if ((model[key] ?? allowed) !== allowed) refuse(`model.${key}`, model[key], JSON.stringify(allowed));
  }
  for (const token of json.added_tokens ?? []) {
    for (const key of ["single_word", "lstrip", "rstrip"]) {
      if (token[key]) refuse(`added token ${JSON.stringify(token.content)}'s ${key}`, token[key], "false");
    }
  }
}

/** The merges as they are stored: ["a", "b"] pairs, or "a b" strings in older files. */
function mergePair(merge, index) {
  if (Array.isArray(merge) && merge.length === 2) return merge;
  if (typeof merge === "string") {
    const parts = merge.split(" ");
    if (parts.length === 2) return parts;
  }
  throw new Error(`tokenizer.json: merge ${index} is ${JSON.stringify(merge)}; expected ["a", "b"] or "a b"`);
}

export class ByteLevelBPE {
  /** A tokenizer from the parsed contents of a tokenizer.json. */
  constructor(json) {
    checkSettings(json);
    const model = json.model;
    this.vocab = new Map(Object.entries(model.vocab));
    this.tokens = [];
    for (const [token, id] of this.vocab) this.tokens[id] = token;
    this.added = (json.added_tokens ?? []).map((t) => ({ id: t.id, content: t.content, special: t.special }));
    for (const t of this.added) this.tokens[t.id] = t.content;
    this.special = new Set(this.added.filter((t) => t.special).map((t) => t.id));
    this.addPrefixSpace = Boolean(json.pre_tokenizer.add_prefix_space);
    this.ignoreMerges = Boolean(model.ignore_merges);
    // (left id, right id) -> [rank, merged id]; rank is the merge's place in the file.
    this.merges = new Map();
    model.merges.forEach((merge, rank) => {
      const [a, b] = mergePair(merge, rank);
      const left = this.vocab.get(a);
      const right = this.vocab.get(b);
      const merged = this.vocab.get(a + b);
      if (left === undefined || right === undefined || merged === undefined) {
        throw new Error(`tokenizer.json: merge ${rank} (${JSON.stringify([a, b])}) names a token the vocabulary lacks`);
      }
      this.merges.set(`${left},${right}`, [rank, merged]);
    });
    this.cache = new Map();
  }

  /** Every id the tokenizer can produce (the vocabulary and the added tokens). */
  get vocabSize() {
    return this.tokens.length;
  }

  idToToken(id) {
    return this.tokens[id];
  }

  tokenToId(token) {
    const added = this.added.find((t) => t.content === token);
    return added ? added.id : this.vocab.get(token);
  }

  isSpecial(id) {
    return this.special.has(id);
  }

  /** The bytes of one token (null for an id outside the vocabulary). */
  tokenBytes(id) {
    const token = this.tokens[id];
    return token === undefined ? null : tokenToBytes(token);
  }

  /** { ids, tokens } of a text, as `Tokenizer.encode(text)` gives them. */
  encode(text) {
    const ids = [];
    for (const piece of this.splitAdded(String(text))) {
      if (piece.id !== undefined) {
        ids.push(piece.id);
        continue;
      }
      let part = piece.text;
      if (this.addPrefixSpace && !part.startsWith(" ")) part = ` ${part}`;
      for (const word of preTokenize(part)) ids.push(...this.wordIds(bytesToChars(word)));
    }
    return { ids, tokens: ids.map((id) => this.tokens[id]) };
  }

  /** The text of a list of ids, as `Tokenizer.decode(ids, skip_special_tokens)` gives it;
   * ids outside the vocabulary are left out, as there. */
  decode(ids, { skipSpecialTokens = true } = {}) {
    const bytes = [];
    for (const id of ids) {
      const token = this.tokens[id];
      if (token === undefined || (skipSpecialTokens && this.special.has(id))) continue;
      bytes.push(...tokenToBytes(token));
    }
    return new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(Uint8Array.from(bytes));
  }

  /** The text cut at each added token: [{ text } | { id }], in order (leftmost match first,
   * the longest of those starting there). */
  splitAdded(text) {
    const pieces = [];
    let start = 0;
    let at = 0;
    while (at < text.length && this.added.length) {
      let best = null;
      let bestAt = -1;
      for (const token of this.added) {
        if (!token.content) continue;
        const found = text.indexOf(token.content, at);
        if (found < 0) continue;
        if (best === null || found < bestAt || (found === bestAt && token.content.length > best.content.length)) {
          best = token;
          bestAt = found;
        }
      }
      if (best === null) break;
      if (bestAt > start) pieces.push({ text: text.slice(start, bestAt) });
      pieces.push({ id: best.id });
      start = at = bestAt + best.content.length;
    }
    if (start < text.length) pieces.push({ text: text.slice(start) });
    return pieces;
  }

  /** The ids of one pre-token (in byte-level characters), by BPE merges. */
  wordIds(word) {
    if (this.ignoreMerges && this.vocab.has(word)) return [this.vocab.get(word)];
    const cached = this.cache.get(word);
    if (cached) return cached;
    // A character the vocabulary lacks is dropped, as the library does without an unk token.
    const symbols = [...word].map((c) => this.vocab.get(c)).filter((id) => id !== undefined);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      let bestId = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const merge = this.merges.get(`${symbols[i]},${symbols[i + 1]}`);
        if (merge && merge[0] < bestRank) [best, bestRank, bestId] = [i, merge[0], merge[1]];
      }
      if (best < 0) break;
      symbols.splice(best, 2, bestId);
    }
    if (this.cache.size > 10000) this.cache.clear();
    this.cache.set(word, symbols);
    return symbols;
  }
}

/** A text's pre-tokens: the matches of the GPT-2 pattern, and any text between them. */
export function preTokenize(text) {
  const words = [];
  let last = 0;
  for (const match of text.matchAll(GPT2_PATTERN)) {
    if (match.index > last) words.push(text.slice(last, match.index));
    words.push(match[0]);
    last = match.index + match[0].length;
  }
  if (last < text.length) words.push(text.slice(last));
  return words;
}

/** Fetch a tokenizer.json (a URL) and build its tokenizer. */
export async function loadTokenizer(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new ByteLevelBPE(await response.json());
}
