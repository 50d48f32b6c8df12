/**
 * From a provider's config (env references resolved) to the settings of its upstream client.
 */
import type { HttpProviderConfig } from '../../config/schema.js';
import type { UpstreamSettings } from './client.js';
import type { ProviderKey } from './keys.js';

/** `api_key` is the one-key shorthand of `keys`. */
export function providerKeys(config: Pick<HttpProviderConfig, 'api_key' | 'keys'>): ProviderKey[] {
  if (config.keys !== undefined) return config.keys.map((k) => ({ value: k.key, weight: k.weight, models: k.models }));
  return config.api_key !== undefined ? [{ value: config.api_key, weight: 1, models: undefined }] : [];
}

export function upstreamSettings(provider: string, config: HttpProviderConfig, origin: string): UpstreamSettings {
  return {
    provider,
    origin,
    keys: providerKeys(config),
    headers: Object.fromEntries(Object.entries(config.headers).map(([k, v]) => [k.toLowerCase(), v])),
    timeoutMs: config.timeout_ms,
    streamIdleTimeoutMs: config.stream_idle_timeout_ms ?? config.timeout_ms,
    connections: config.connections,
    retries: {
      maxRetries: config.retries.max_retries,
      initialBackoffMs: config.retries.initial_backoff_ms,
      maxBackoffMs: config.retries.max_backoff_ms,
      maxRetryAfterMs: config.retries.max_retry_after_ms,
    },
    maxInFlight: config.concurrency.max_in_flight,
    maxQueue: config.concurrency.max_queue,
    maxResponseBytes: config.max_response_bytes,
    maxEventBytes: config.max_event_bytes,
    dropUnsupported: config.drop_unsupported,
  };
}

/** The URL's path without a trailing slash, to which operation paths are appended. */
export function basePath(url: URL): string {
  return url.pathname.replace(/\/+$/, '');
}
