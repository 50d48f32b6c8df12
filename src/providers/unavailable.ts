/**
 * A configured provider that can't be used (an env reference is not set): every call fails with the reason.
 */
import type { HeimdallError } from '../errors.js';
import type { Payload } from '../payload.js';
import type { Provider, StreamChunk } from './provider.js';

export class UnavailableProvider implements Provider {
  constructor(
    readonly name: string,
    readonly models: readonly string[] | undefined,
    private readonly reason: HeimdallError,
  ) {}

  chat(): Promise<Payload> {
    return Promise.reject(this.reason);
  }

  stream(): Promise<AsyncIterable<StreamChunk>> {
    return Promise.reject(this.reason);
  }

  embeddings(): Promise<Payload> {
    return Promise.reject(this.reason);
  }

  async close(): Promise<void> {}
}
