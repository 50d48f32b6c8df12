/**
 * An upstream's non-2xx answer as a catalogued error. OpenAI, Anthropic and Gemini all put the reason in
 * `error.message`, so one reader serves them all. Whatever of the upstream's own text goes into an error passes
 * through the provider's redactor first (see redact.ts): the upstream may have echoed the credential it was given.
 */
import { Errors, type HeimdallError } from '../../errors.js';
import { jsonDepthExceeds } from '../../json-depth.js';
import type { Redact } from './redact.js';

/** Statuses that mean the request itself was refused: the client's to fix, so a 4xx for the client too. */
const REJECTED = new Set([400, 404, 409, 413, 422]);

const PREVIEW_CHARS = 300;
/** How much of a body a preview redacts before cutting it: a secret across the cut is still seen whole. */
const PREVIEW_WINDOW = 4096;

export function statusError(provider: string, status: number, body: Buffer, redact: Redact, retryAfterMs?: number): HeimdallError {
  const message = upstreamMessage(body, redact);
  let err: HeimdallError;
  if (status === 429) err = Errors.UPSTREAM_RATE_LIMIT(provider, message);
  else if (REJECTED.has(status)) err = Errors.UPSTREAM_REJECTED(provider, status, message);
  else err = Errors.UPSTREAM_STATUS(provider, status, message);
  if (retryAfterMs !== undefined) err.retryAfter = Math.ceil(retryAfterMs / 1000);
  return err;
}

/** The upstream's own reason, from a JSON error body, or else a preview of the body; redacted either way. */
export function upstreamMessage(body: Buffer | string, redact: Redact): string {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (!jsonDepthExceeds(text)) {
    try {
      const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown } | unknown[];
      // Gemini sometimes wraps its error in a one-element array.
      const first = (Array.isArray(parsed) ? parsed[0] : parsed) as { error?: { message?: unknown } | string; message?: unknown } | undefined;
      if (typeof first?.error === 'string') return redact(first.error);
      if (typeof first?.error?.message === 'string') return redact(first.error.message);
      if (typeof first?.message === 'string') return redact(first.message);
    } catch {
      // not JSON: show it as text
    }
  }
  return preview(text, redact) || '(empty body)';
}

/** The start of an upstream's body, redacted, for an error message. */
export function preview(body: Buffer | string, redact: Redact): string {
  const window = typeof body === 'string' ? body.slice(0, PREVIEW_WINDOW) : body.toString('utf8', 0, PREVIEW_WINDOW);
  const text = redact(window);
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}...` : text;
}
