/**
 * Redaction of an upstream's own text (its error messages, a preview of a body it sent) before any of it goes into
 * an error, and from there to a client, a plugin or a log. An OpenAI-compatible server that echoes the credential
 * it was given ("Incorrect API key provided: Bearer sk-...") would otherwise hand the gateway's key to every client.
 *
 * Two things are hidden: the provider's own secrets, word for word, and anything shaped like a credential whoever
 * it belongs to (a bearer token, the common API-key shapes).
 */
import type { ProviderKey } from './keys.js';

export type Redact = (text: string) => string;

export const REDACTED = '[redacted]';

/** `Bearer <token>` (RFC 6750's token characters): the scheme is kept, the token goes. */
const BEARER = /\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*/gi;
/** API keys of the usual shapes and 20+ characters: OpenAI/Anthropic/DeepSeek `sk-`, Groq `gsk_`, xAI, Google `AIza`. */
const API_KEY = /\b(?:sk-|sk_|gsk_|xai-)[A-Za-z0-9_-]{17,}|\bAIza[A-Za-z0-9_-]{30,}/g;
/** Configured headers whose values are credentials (an `Authorization` for a self-hosted server, say). */
const SECRET_HEADER = /(auth|key|token|secret|password|cookie|credential)/i;

/** The shortest text that, being a piece of a secret, is hidden as one: shorter pieces are ordinary words. */
const MIN_FRAGMENT = 8;

/** A redactor for `secrets` (empty ones are ignored), which also hides credential-shaped text. */
export function redactor(secrets: readonly string[]): Redact {
  // Longest first, so a secret that contains another is hidden whole.
  const words = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  return (text) => {
    // A piece of a secret on its own (an upstream that split the key between two fields) is hidden whole.
    if (text.length >= MIN_FRAGMENT && words.some((word) => word.length > text.length && word.includes(text))) return REDACTED;
    let out = text;
    for (const word of words) if (out.includes(word)) out = out.split(word).join(REDACTED);
    return out.replace(BEARER, `$1${REDACTED}`).replace(API_KEY, REDACTED);
  };
}

/** What one upstream client holds that must never be shown: its keys, and its credential-like header values. */
export function upstreamSecrets(keys: readonly ProviderKey[], headers: Record<string, string>): string[] {
  const fromHeaders = Object.entries(headers).filter(([name]) => SECRET_HEADER.test(name)).map(([, value]) => value);
  return [...keys.map((k) => k.value), ...fromHeaders];
}
