/**
 * An upstream's non-2xx answer as a catalogued error that keeps the upstream's meaning: its HTTP status (a 401
 * stays a 401, a 404 a 404, Anthropic's 529 a 529), and the `type`, `code` and `param` of its error body, which the
 * client gets back in its own API's error shape (errors.ts errorBody, the Anthropic route's anthropicError). OpenAI,
 * Anthropic and Gemini all put the reason in `error.message`, so one reader serves them all. Whatever of the
 * upstream's own text goes into an error passes through the provider's redactor first (see redact.ts): the upstream
 * may have echoed the credential it was given.
 */
import { Errors, type HeimdallError, type UpstreamErrorInfo } from '../../errors.js';
import { jsonDepthExceeds } from '../../json-depth.js';
import type { Redact } from './redact.js';

const PREVIEW_CHARS = 300;
/** How much of a body a preview redacts before cutting it: a secret across the cut is still seen whole. */
const PREVIEW_WINDOW = 4096;
/** An upstream's type, code or param longer than this is not an identifier: it is left out. */
const MAX_IDENTIFIER = 128;

export function statusError(provider: string, status: number, body: Buffer, redact: Redact, retryAfterMs?: number): HeimdallError {
  const { message, info } = readUpstreamError(body, redact);
  let err: HeimdallError;
  if (status === 429) err = Errors.UPSTREAM_RATE_LIMIT(provider, message);
  else if (status >= 400 && status < 500) err = Errors.UPSTREAM_REJECTED(provider, status, message);
  else err = Errors.UPSTREAM_STATUS(provider, status, message);
  err.statusCode = clientStatus(status);
  err.upstream = { status, ...info };
  if (retryAfterMs !== undefined) err.retryAfter = Math.min(Math.ceil(retryAfterMs / 1000), MAX_RETRY_AFTER_S);
  return err;
}

/**
 * The statuses passed to the client as they are: each means the same from the gateway as from the upstream, and
 * every SDK and HTTP client handles them. Others are not: a 407 would make a fetch-based client think its proxy
 * refused it, a 499 is the gateway's own (the client left), a 1xx or 3xx would confuse it. Another 4xx is the
 * client's 400, another 5xx (or anything else) the gateway's 502.
 */
const KEPT_STATUSES = new Set([400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529]);
/** A day: an upstream's retry-after beyond it is not a wait, it is a mistake. */
const MAX_RETRY_AFTER_S = 86_400;

function clientStatus(status: number): number {
  if (KEPT_STATUSES.has(status)) return status;
  return status >= 400 && status < 500 ? 400 : 502;
}

/** The upstream's own reason, from a JSON error body, or else a preview of the body; redacted either way. */
export function upstreamMessage(body: Buffer | string, redact: Redact): string {
  return readUpstreamError(body, redact).message;
}

interface ErrorShape {
  error?: { message?: unknown; type?: unknown; code?: unknown; param?: unknown; status?: unknown } | string;
  message?: unknown;
  type?: unknown;
}

/**
 * The message, and the error's identifiers: OpenAI's `error.{type, code, param}`, Anthropic's `error.type`,
 * Gemini's `error.status` (its code is the HTTP status again, so its status name is the code worth keeping).
 */
function readUpstreamError(body: Buffer | string, redact: Redact): { message: string; info: Omit<UpstreamErrorInfo, 'status'> } {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const info: Omit<UpstreamErrorInfo, 'status'> = {};
  if (!jsonDepthExceeds(text)) {
    try {
      const parsed = JSON.parse(text) as ErrorShape | unknown[];
      // Gemini sometimes wraps its error in a one-element array.
      const first = (Array.isArray(parsed) ? parsed[0] : parsed) as ErrorShape | undefined;
      const e = first?.error;
      if (typeof e === 'object' && e !== null) {
        const status = identifier(e.status, redact);
        const type = identifier(e.type, redact) ?? (status !== undefined ? GEMINI_TYPES[status] : undefined);
        const code = identifier(e.code, redact) ?? status;
        if (type !== undefined) info.type = type;
        if (code !== undefined) info.code = code;
        const param = e.param === null ? null : identifier(e.param, redact);
        if (param !== undefined) info.param = param;
      }
      if (typeof e === 'string') return { message: redact(e), info };
      if (typeof e?.message === 'string') return { message: redact(e.message), info };
      if (typeof first?.message === 'string') return { message: redact(first.message), info };
    } catch {
      // not JSON: show it as text
    }
  }
  return { message: preview(text, redact) || '(empty body)', info };
}

/** Gemini's error status names (Google's RPC codes), as the OpenAI error type a client switches on. */
const GEMINI_TYPES: Record<string, string> = {
  INVALID_ARGUMENT: 'invalid_request_error',
  FAILED_PRECONDITION: 'invalid_request_error',
  OUT_OF_RANGE: 'invalid_request_error',
  NOT_FOUND: 'invalid_request_error',
  UNAUTHENTICATED: 'authentication_error',
  PERMISSION_DENIED: 'permission_error',
  RESOURCE_EXHAUSTED: 'rate_limit_error',
  UNAVAILABLE: 'server_error',
  INTERNAL: 'server_error',
  DEADLINE_EXCEEDED: 'server_error',
};

function identifier(v: unknown, redact: Redact): string | undefined {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_IDENTIFIER ? redact(v) : undefined;
}

/** The start of an upstream's body, redacted, for an error message. */
export function preview(body: Buffer | string, redact: Redact): string {
  const window = typeof body === 'string' ? body.slice(0, PREVIEW_WINDOW) : body.toString('utf8', 0, PREVIEW_WINDOW);
  const text = redact(window);
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}...` : text;
}
