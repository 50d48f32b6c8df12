/**
 * When to retry an upstream call and how long to wait first: exponential backoff with jitter, or the upstream's
 * own retry-after when it gives one.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface RetryPolicy {
  maxRetries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A retry-after longer than this is not waited out. */
  maxRetryAfterMs: number;
}

/** 408 and 429 say "try later"; 5xx (including Anthropic's 529 "overloaded") may be transient. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * The wait before retry number `retry` (0 for the first): the exponential ceiling, of which a random half is
 * kept, so callers that failed together do not come back together.
 */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** retry);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The upstream's requested wait in ms: retry-after-ms (OpenAI), retry-after in seconds, or an HTTP date. */
export function retryAfterMs(headers: IncomingHttpHeaders, now: number = Date.now()): number | undefined {
  const ms = Number(single(headers['retry-after-ms']));
  if (Number.isFinite(ms) && ms >= 0 && single(headers['retry-after-ms']) !== undefined) return Math.round(ms);
  const value = single(headers['retry-after']);
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.round(seconds * 1000) : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
