/**
 * Which of an upstream's response headers reach the client, under their own names: the rate-limit headers SDKs
 * throttle on (OpenAI's x-ratelimit-*, Anthropic's anthropic-ratelimit-*, the IETF draft's ratelimit-*), the
 * upstream's request id (what its support asks for), and OpenAI's processing time and version. Nothing else: an
 * upstream's cookies, its organisation or project, or its connection headers are none of the client's business.
 *
 * One name is taken: `x-request-id` is the gateway's own id (the client's, when it sent one), which its logs and
 * plugins know the request by; an upstream's `x-request-id` (OpenAI's) is relayed as `x-upstream-request-id`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Redact } from './redact.js';

const RELAYED_PREFIXES = ['x-ratelimit-', 'anthropic-ratelimit-', 'ratelimit-'];
const RELAYED = new Set(['x-request-id', 'request-id', 'openai-processing-ms', 'openai-version', 'retry-after-ms', 'ratelimit', 'ratelimit-policy']);
export const UPSTREAM_REQUEST_ID = 'x-upstream-request-id';
/** Enough for every header above; an upstream that sends more gets the first ones. */
const MAX_HEADERS = 32;
const MAX_VALUE = 256;

/**
 * The relayed headers of an answer, lower-case; undefined when there are none. A value in which `redact` finds a
 * secret (the upstream echoed the gateway's key, say) is left out whole.
 */
export function relayedHeaders(headers: IncomingHttpHeaders, redact: Redact): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  let count = 0;
  for (const name in headers) {
    if (!RELAYED.has(name) && !RELAYED_PREFIXES.some((p) => name.startsWith(p))) continue;
    const raw = headers[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value === undefined || value.length > MAX_VALUE || !SAFE_VALUE.test(value) || redact(value) !== value) continue;
    (out ??= {})[name === 'x-request-id' ? UPSTREAM_REQUEST_ID : name] = value;
    if (++count >= MAX_HEADERS) break;
  }
  return out;
}

/** Printable ASCII and tabs: what can be set as a header again without Node refusing it. */
const SAFE_VALUE = /^[\t\x20-\x7e]*$/;
