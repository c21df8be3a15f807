// XXH64, the 64-bit xxHash, in plain JavaScript with BigInt: the hash the engine's prefix cache
// keys its blocks with (nanovllm/engine/block_manager.py, compute_block_key, which calls the
// Python package `xxhash`). tests/ext/test_prefix_cache_js.py compares it with that package on
// inputs of every length from 0 to 300 bytes and on seeds other than 0.
//
// The algorithm, as xxHash's specification gives it: every step is arithmetic modulo 2^64.
//   input of 32 bytes or more: four lanes start from the seed; each 32-byte stripe feeds one
//     8-byte word to each lane (round); the lanes are then rotated, summed and merged;
//   shorter input: the state starts from seed + PRIME5;
//   then the length is added, the last 8-byte words, 4-byte word and bytes are folded in,
//   and a final avalanche mixes the bits.
// Plain module, no DOM: the prefix-cache explorer loads it in the browser, the tests in Node.

const MASK = (1n << 64n) - 1n;
export const PRIME1 = 0x9E3779B185EBCA87n;
export const PRIME2 = 0xC2B2AE3D27D4EB4Fn;
const PRIME3 = 0x165667B19E3779F9n;
const PRIME4 = 0x85EBCA77C2B2AE63n;
const PRIME5 = 0x27D4EB2F165667C5n;

function rotl(x, bits) {
  const r = BigInt(bits);
  return ((x << r) | (x >> (64n - r))) & MASK;
}

function mul(a, b) {
  return (a * b) & MASK;
}

/** One lane consumes one 8-byte word. */
function round(lane, word) {
  return mul(rotl((lane + mul(word, PRIME2)) & MASK, 31), PRIME1);
}

function mergeRound(hash, lane) {
  return (mul(hash ^ round(0n, lane), PRIME1) + PRIME4) & MASK;
}

function avalanche(hash) {
  let h = hash;
  h = mul(h ^ (h >> 33n), PRIME2);
  h = mul(h ^ (h >> 29n), PRIME3);
  return h ^ (h >> 32n);
}

/** XXH64 of `bytes` (a Uint8Array) with `seed` (a BigInt below 2^64): an unsigned BigInt. */
export function xxh64(bytes, seed = 0n) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = bytes.length;
  let at = 0;
  let hash;
  if (length >= 32) {
    let v1 = (seed + PRIME1 + PRIME2) & MASK;
    let v2 = (seed + PRIME2) & MASK;
    let v3 = seed;
    let v4 = (seed - PRIME1) & MASK;
    for (; at + 32 <= length; at += 32) {
      v1 = round(v1, view.getBigUint64(at, true));
      v2 = round(v2, view.getBigUint64(at + 8, true));
      v3 = round(v3, view.getBigUint64(at + 16, true));
      v4 = round(v4, view.getBigUint64(at + 24, true));
    }
    hash = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) & MASK;
    for (const lane of [v1, v2, v3, v4]) hash = mergeRound(hash, lane);
  } else {
    hash = (seed + PRIME5) & MASK;
  }
  hash = (hash + BigInt(length)) & MASK;
  for (; at + 8 <= length; at += 8) {
    hash ^= round(0n, view.getBigUint64(at, true));
    hash = (mul(rotl(hash, 27), PRIME1) + PRIME4) & MASK;
  }
  if (at + 4 <= length) {
    hash ^= mul(BigInt(view.getUint32(at, true)), PRIME1);
    hash = (mul(rotl(hash, 23), PRIME2) + PRIME3) & MASK;
    at += 4;
  }
  for (; at < length; at += 1) {
    hash ^= mul(BigInt(bytes[at]), PRIME5);
    hash = mul(rotl(hash, 11), PRIME1);
  }
  return avalanche(hash);
}
