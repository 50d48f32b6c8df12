/**
 * The per-request context every hook receives first: request id, route, target, selected headers, and the values
 * plugins set for later hooks. Its JSON is built once and rebuilt only after something in it changed.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ContextPatch, JsonObject } from '../plugins/plugin.js';

/** Credentials never reach PreHook and later hooks through the context (TransportInterceptor sees them). */
const HIDDEN_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'api-key']);

export class RequestContext {
  provider: string | null = null;
  model: string | null = null;
  stream = false;
  /**
   * The request's handle for the host services (ABI 1.2): set when its pipeline run starts, 0 before. Hooks read it
   * from the context's first field and pass it to state_get, state_set and log.
   */
  handle = 0;
  private readonly values: JsonObject = {};
  private headers: Record<string, string> | undefined;
  private cached: Buffer | undefined;

  constructor(
    readonly requestId: string,
    readonly route: string,
    private rawHeaders: IncomingHttpHeaders,
  ) {}

  /** The request headers as the gateway now sees them (after any TransportInterceptor rewrite), all of them. */
  get allHeaders(): IncomingHttpHeaders {
    return this.rawHeaders;
  }

  /** Apply a TransportInterceptor's header changes: a string sets, null removes. */
  rewriteHeaders(changes: Record<string, string | null>): void {
    const next: IncomingHttpHeaders = { ...this.rawHeaders };
    for (const [name, value] of Object.entries(changes)) {
      const key = name.toLowerCase();
      if (value === null) delete next[key];
      else next[key] = value;
    }
    this.rawHeaders = next;
    this.headers = undefined;
    this.cached = undefined;
  }

  setTarget(provider: string, model: string, stream: boolean): void {
    this.provider = provider;
    this.model = model;
    this.stream = stream;
    this.cached = undefined;
  }

  apply(patch: ContextPatch | undefined): void {
    if (patch === undefined) return;
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete this.values[key];
      else this.values[key] = value;
    }
    this.cached = undefined;
  }


  /** The context as the ABI's compact JSON. */
  bytes(): Buffer {
    return (this.cached ??= Buffer.from(
      JSON.stringify({
        request_handle: this.handle, // first, always: heimdall_request() in the C header reads it there
        request_id: this.requestId,
        route: this.route,
        provider: this.provider,
        model: this.model,
        stream: this.stream,
        headers: this.visibleHeaders(),
        values: this.values,
      }),
    ));
  }

  private visibleHeaders(): Record<string, string> {
    return (this.headers ??= joinHeaders(this.rawHeaders, HIDDEN_HEADERS));
  }
}

/** All headers, joined to strings, for the TransportInterceptor's view of the request. */
export function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return joinHeaders(headers, undefined);
}

/** Repeated headers joined with ", ", as HTTP allows; `hidden` ones left out. (for-in: no entry arrays per request) */
function joinHeaders(headers: IncomingHttpHeaders, hidden: ReadonlySet<string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || hidden?.has(name)) continue;
    out[name] = typeof value === 'string' ? value : value.join(', ');
  }
  return out;
}
