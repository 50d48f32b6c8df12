/**
 * The answer of a provider to an operation its wire format does not have.
 */
import { Errors } from '../errors.js';
import type { Payload } from '../payload.js';

export function unsupported(provider: string, what: string): Promise<Payload> {
  return Promise.reject(Errors.PROVIDER_UNSUPPORTED(provider, what));
}
