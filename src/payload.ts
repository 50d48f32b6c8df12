/**
 * A JSON object that may exist as bytes, as a parsed value, or both, each made from the other only when first
 * needed. This is how Heimdall serialises once: bytes received from the client or the provider travel to plugins
 * and back out untouched unless somebody actually changes the value.
 */
import { Errors } from './errors.js';
import type { JsonObject } from './plugins/plugin.js';

/** A client's request body as JSON (any value: the route checks its shape), or the client's 400. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw Errors.BAD_JSON('the body is empty');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw Errors.BAD_JSON((err as Error).message);
  }
}

/** An answer in a provider's own wire format, kept beside its canonical translation (see Payload.native). */
export interface NativeAnswer {
  format: 'anthropic';
  bytes: Buffer;
}

export class Payload {
  /**
   * The upstream's own answer, when the canonical value was translated from another format: a drop-in route of
   * that format sends these bytes when the Payload reaches it unchanged (a PostHook that replaces the answer makes
   * a new Payload, without them).
   */
  native: NativeAnswer | undefined = undefined;

  private constructor(
    private buf: Buffer | undefined,
    private obj: JsonObject | undefined,
  ) {}

  /** `value`, when given, must be what `bytes` parse to. */
  static fromBytes(bytes: Buffer, value?: JsonObject): Payload {
    return new Payload(bytes, value);
  }

  static fromValue(value: JsonObject): Payload {
    return new Payload(undefined, value);
  }

  bytes(): Buffer {
    return (this.buf ??= Buffer.from(JSON.stringify(this.obj)));
  }

  /** Throws SyntaxError (or TypeError for a non-object) when the bytes are not a JSON object. */
  value(): JsonObject {
    if (this.obj === undefined) {
      const parsed: unknown = JSON.parse((this.buf as Buffer).toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new TypeError('expected a JSON object');
      }
      this.obj = parsed as JsonObject;
    }
    return this.obj;
  }

}
