/**
 * A limit on how deep JSON from outside the gateway may nest (an upstream's answers and stream events; plugin
 * output may use it too), checked before the text is parsed.
 *
 * JSON.parse itself copes with deep nesting, but what the gateway does with the value next does not: JSON.stringify,
 * zod and the plugins' serialisers recurse, and 200,000 levels end in "Maximum call stack size exceeded" somewhere
 * far from the cause. The check is one linear scan without recursion: brackets are counted outside strings, and
 * inside a string only the closing quote and the backslash matter.
 */
import { Errors } from './errors.js';

/** Far deeper than any real answer, far shallower than any stack. */
export const MAX_JSON_DEPTH = 256;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * True when `json` opens more than `limit` arrays or objects inside one another. Says nothing about whether the
 * text is valid JSON (JSON.parse decides that). Works on UTF-8 bytes and strings alike: every character the scan
 * looks for is ASCII, and no byte of a multi-byte UTF-8 sequence is. Costs about a fifth of what JSON.parse does.
 */
export function jsonDepthExceeds(json: Buffer | string, limit = MAX_JSON_DEPTH): boolean {
  if (json.length <= limit) return false; // too short to open limit + 1 levels
  return typeof json === 'string' ? stringExceeds(json, limit) : bytesExceed(json, limit);
}

// Two copies of one loop, so that each stays monomorphic. Strings are skipped with indexOf (memchr for bytes).

function bytesExceed(json: Buffer, limit: number): boolean {
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === QUOTE) {
      i = closingQuote(json, i + 1);
      if (i === -1) return false;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

function stringExceeds(json: string, limit: number): boolean {
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuote(json, i + 1);
      if (i === -1) return false;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/** The index of the quote that ends a string whose text starts at `from`: the first not escaped; -1 if none. */
function closingQuote(json: Buffer | string, from: number): number {
  const bytes = typeof json !== 'string';
  for (let q = bytes ? json.indexOf(QUOTE, from) : json.indexOf('"', from); q !== -1; q = bytes ? json.indexOf(QUOTE, q + 1) : json.indexOf('"', q + 1)) {
    let backslashes = 0;
    while (q - backslashes - 1 >= from && (bytes ? json[q - backslashes - 1] : json.charCodeAt(q - backslashes - 1)) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return -1;
}

/** Throws HEIMDALL_ERR_JSON_TOO_DEEP, naming `source` ("provider openai", "plugin cache"), when `json` nests too deep. */
export function assertJsonDepth(json: Buffer | string, source: string, limit = MAX_JSON_DEPTH): void {
  if (jsonDepthExceeds(json, limit)) throw Errors.JSON_TOO_DEEP(source, limit);
}
