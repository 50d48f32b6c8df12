/**
 * What every provider implements. Providers speak one upstream wire format each, and know nothing of plugins or
 * HTTP routes: they take an OpenAI-shaped request and give back an OpenAI-shaped response or chunk stream, or throw
 * a catalogued HeimdallError. Retries, key rotation, timeouts and the concurrency limit happen inside a provider
 * (see http/client.ts), so one call here is one logical upstream call, however many attempts it took.
 */
import type { CancelSignal } from '../cancel.js';
import type { Payload } from '../payload.js';
import type { JsonObject } from '../plugins/plugin.js';

export interface ProviderCall {
  /** The model name the upstream knows ("gpt-4o-mini", not "openai/gpt-4o-mini"). */
  model: string;
  /** The OpenAI-shaped request. Its "model" is still the gateway's "provider/model" name. */
  request: Payload;
  /** True when `request` holds the client's own bytes, untouched by plugins. */
  unchanged: boolean;
  /** Aborts when the client has gone: stop the upstream work. */
  signal: CancelSignal;
  /** What the provider learns of the exchange besides the answer: headers to relay, fields left out. */
  meta: UpstreamMeta;
  /**
   * The client's own request in its own wire format, when a drop-in route received it (the Anthropic route's
   * Messages request). A provider that speaks that format sends it upstream, only the model swapped, while
   * `unchanged` is true: the lossless path.
   */
  native?: NativeRequest | undefined;
}

/** A drop-in route's request as the client sent it. */
export interface NativeRequest {
  format: 'anthropic';
  /**
   * The request body as the gateway parsed it (after TransportInterceptors), without the gateway's own fields
   * (fallbacks). It is sent as this value, serialised, never as the client's bytes: bytes with a key given twice
   * would tell the upstream (which may keep the first) something other than what the gateway checked (the last).
   */
  value: JsonObject;
  /** The client's headers that the format forwards upstream (anthropic-beta...), after TransportInterceptors. */
  headers: Record<string, string>;
}

/**
 * Filled by the provider during a call, read by the route that answers the client: the upstream's headers a
 * client should see (rate limits, the upstream's request id), and the request fields a translation left out
 * (allowed by the provider's `drop_unsupported`), sent as `x-heimdall-dropped`.
 */
export interface UpstreamMeta {
  headers: Record<string, string> | undefined;
  dropped: string[];
}

export function newUpstreamMeta(): UpstreamMeta {
  return { headers: undefined, dropped: [] };
}

/**
 * One chat.completion.chunk of a stream, read once: `text` is what the client is sent (the upstream's own bytes
 * when they needed no translating), `value` is what `text` parses to, and what the gateway reads (the assembler
 * behind PostHook, the drop-in Anthropic route, the token metrics), so nothing parses a chunk's text again. Both
 * are shared by every reader of the chunk: read `value`, never change it.
 */
export interface StreamChunk {
  readonly text: string;
  readonly value: JsonObject;
  /**
   * The upstream's own events this chunk was made from, as SSE text in the upstream's wire format (an Anthropic
   * upstream's `event: ...\ndata: ...\n\n` frames, including events that have no canonical equivalent, such as
   * ping). A drop-in route of the same format writes these instead of translating `value` back, when no plugin
   * could have changed the chunks.
   */
  readonly native?: string;
}

/** A chunk the gateway built itself: its text is the value's one serialisation. */
export function chunkOf(value: JsonObject): StreamChunk {
  return { text: JSON.stringify(value), value };
}

/** A chat-completions call. */
export type ChatCall = ProviderCall;
/** An embeddings call. */
export type EmbeddingsCall = ProviderCall;

export interface Provider {
  readonly name: string;
  /** Models this provider accepts; undefined means any. */
  readonly models: readonly string[] | undefined;
  /** A chat.completion object. */
  chat(call: ChatCall): Promise<Payload>;
  /**
   * Resolves once the upstream has accepted the request (so a failure before the first byte is an ordinary
   * rejection), to the chat.completion.chunk objects, in order, each as its text and its parsed value.
   */
  stream(call: ChatCall): Promise<AsyncIterable<StreamChunk>>;
  /** An OpenAI embeddings list; providers without embeddings reject with HEIMDALL_ERR_PROVIDER_UNSUPPORTED. */
  embeddings(call: EmbeddingsCall): Promise<Payload>;
  /**
   * The upstream's token count for a request in the native format (`call.native`), answered in that format;
   * undefined for providers that can't count (the route answers 400, naming the provider).
   */
  countTokens?(call: ProviderCall): Promise<Payload>;
  /**
   * Each of its API keys as the operator sees it, never the key itself: present on providers that call an upstream
   * with keys (an HTTP provider), answering [] when it has none.
   */
  keyStates?(): KeyState[];
  close(): Promise<void>;
}

/**
 * One API key of a provider, without its value (nor any part or hash of it): its place among the keys, what the
 * config says of it, and whether the upstream's last refusal (429, 401, 403) keeps it resting.
 */
export interface KeyState {
  /** From 1, in the order the provider's keys are given (its `api_key` alone is 1). */
  position: number;
  weight: number;
  /** The models it may be used for; null: any. */
  models: string[] | null;
  /** While it rests: until when (ISO time), how much longer (ms) and the status that made it rest. */
  resting: { until: string; for_ms: number; status: number } | null;
}
