/**
 * Hiding secrets in config values shown to people (status output, the admin API). Environment references are
 * shown as written ("env.NAME" is not a secret); literal values under secret-looking keys are masked.
 */
import { ENV_REF } from './schema.js';

const SECRET_KEY = /(key|token|secret|password|passwd|credential|auth|cookie|private)/i;

export function redactSecrets<T>(value: T): T {
  return walk(value, false) as T;

  function walk(v: unknown, secret: boolean): unknown {
    if (typeof v === 'string') return secret && !ENV_REF.test(v) ? '[redacted]' : v;
    if (Array.isArray(v)) return v.map((item) => walk(item, secret));
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item, secret || SECRET_KEY.test(k))]));
    }
    return secret && v !== null && v !== undefined ? '[redacted]' : v;
  }
}
