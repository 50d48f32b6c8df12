/**
 * One request as its metrics see it once the reply is sent: where it went (the context's provider and model) and
 * how long the gateway waited on upstreams for it.
 *
 * The route opens an exchange per request. A provider call finds it through the request's cancellation signal, the one
 * per-request object a ProviderCall carries (providers know nothing of HTTP requests), and the onResponse hook finds
 * it through the request. It hangs off both in a symbol-keyed slot rather than in WeakMaps: weak entries for
 * short-lived keys made every young-generation GC pause about a tenth longer, and those pauses are the p99.
 */
import type { CancelSignal } from '../cancel.js';
import type { RequestContext } from '../pipeline/context.js';

export interface Exchange {
  readonly ctx: RequestContext;
  /** Summed over every provider call the request made (fallbacks) and every wait for a streamed chunk. */
  upstreamMs: number;
}

const SLOT = Symbol('heimdall.exchange');
type Carrier = { [SLOT]?: Exchange };

export function openExchange(request: object, ctx: RequestContext, signal: CancelSignal): void {
  const exchange: Exchange = { ctx, upstreamMs: 0 };
  (request as Carrier)[SLOT] = exchange;
  (signal as Carrier)[SLOT] = exchange;
}

export function exchangeOf(request: object): Exchange | undefined {
  return (request as Carrier)[SLOT];
}

/** Adds upstream time to the request that owns `signal` (nothing, for a call made outside a request). */
export function addUpstreamTime(signal: CancelSignal, ms: number): void {
  const exchange = (signal as Carrier)[SLOT];
  if (exchange !== undefined) exchange.upstreamMs += ms;
}
