/**
 * One chat request as its metrics see it once the reply is sent: where it went (the context's provider and model)
 * and how long the gateway waited on the upstream for it.
 *
 * The chat route opens an exchange per request. A provider call finds it through the request's AbortSignal, the one
 * per-request object a ChatCall carries (providers know nothing of HTTP requests), and the onResponse hook finds it
 * through the request. Both maps are weak: an exchange goes away with its request.
 */
import type { RequestContext } from '../pipeline/context.js';

export interface Exchange {
  readonly ctx: RequestContext;
  /** Summed over every provider call the request made (retries, fallbacks) and every wait for a streamed chunk. */
  upstreamMs: number;
}

const byRequest = new WeakMap<object, Exchange>();
const bySignal = new WeakMap<AbortSignal, Exchange>();

export function openExchange(request: object, ctx: RequestContext, signal: AbortSignal): void {
  const exchange: Exchange = { ctx, upstreamMs: 0 };
  byRequest.set(request, exchange);
  bySignal.set(signal, exchange);
}

export function exchangeOf(request: object): Exchange | undefined {
  return byRequest.get(request);
}

/** Adds upstream time to the request that owns `signal` (nothing, for a call made outside a chat request). */
export function addUpstreamTime(signal: AbortSignal, ms: number): void {
  const exchange = bySignal.get(signal);
  if (exchange !== undefined) exchange.upstreamMs += ms;
}
