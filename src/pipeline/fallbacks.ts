/**
 * A request's `fallbacks`: the models to try, in order, when the primary model's call fails (after its own
 * retries) and no plugin said `allow_fallbacks: false`. Each fallback attempt starts again from the request as the
 * client sent it, with only the model changed, and runs the PreHook/PostHook pipeline again.
 */
import { Errors } from '../errors.js';
import type { Json, JsonObject } from '../plugins/plugin.js';
import type { ResolvedModel } from '../providers/registry.js';

/** Each attempt is a full upstream call, with its own retries: a long list would multiply one request's cost. */
export const MAX_FALLBACKS = 10;

/** The fallbacks, resolved now, so a typo is the client's 4xx at once rather than a surprise after a failure. */
export function parseFallbacks(value: Json | undefined, resolve: (name: string) => ResolvedModel): ResolvedModel[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw Errors.BAD_REQUEST('"fallbacks" must be an array of model names such as ["anthropic/claude-3-5-haiku-latest"]');
  }
  if (value.length > MAX_FALLBACKS) throw Errors.BAD_REQUEST(`"fallbacks" may name at most ${MAX_FALLBACKS} models`);
  return (value as string[]).map((name) => resolve(name));
}

/** The request a fallback attempt starts from: the client's, for another model, without further fallbacks. */
export function fallbackRequest(original: JsonObject, target: ResolvedModel): JsonObject {
  const { fallbacks: _dropped, ...rest } = original;
  return { ...rest, model: modelName(target) };
}

/** "provider/model", as the gateway names it. */
export function modelName(target: ResolvedModel): string {
  return `${target.provider.name}/${target.model}`;
}
