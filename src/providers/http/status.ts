/**
 * An upstream's non-2xx answer as a catalogued error. OpenAI, Anthropic and Gemini all put the reason in
 * `error.message`, so one reader serves them all.
 */
import { Errors, type HeimdallError } from '../../errors.js';

/** Statuses that mean the request itself was refused: the client's to fix, so a 4xx for the client too. */
const REJECTED = new Set([400, 404, 409, 413, 422]);

export function statusError(provider: string, status: number, body: Buffer, retryAfterMs?: number): HeimdallError {
  const message = upstreamMessage(body);
  let err: HeimdallError;
  if (status === 429) err = Errors.UPSTREAM_RATE_LIMIT(provider, message);
  else if (REJECTED.has(status)) err = Errors.UPSTREAM_REJECTED(provider, status, message);
  else err = Errors.UPSTREAM_STATUS(provider, status, message);
  if (retryAfterMs !== undefined) err.retryAfter = Math.ceil(retryAfterMs / 1000);
  return err;
}

export function upstreamMessage(body: Buffer | string): string {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown } | unknown[];
    // Gemini sometimes wraps its error in a one-element array.
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as { error?: { message?: unknown } | string; message?: unknown } | undefined;
    if (typeof first?.error === 'string') return first.error;
    if (typeof first?.error?.message === 'string') return first.error.message;
    if (typeof first?.message === 'string') return first.message;
  } catch {
    // not JSON: show it as text
  }
  return preview(text) || '(empty body)';
}

export function preview(body: Buffer | string): string {
  const text = typeof body === 'string' ? body : body.toString('utf8', 0, 301);
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}
