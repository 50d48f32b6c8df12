/**
 * Reading config.json: parse, fill defaults, validate with zod (every error names its JSON path), and resolve
 * `env.NAME` references. The validated config keeps the references; resolved values live only in what is handed to
 * providers and plugins, so logging or printing a Config can never leak a secret.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { Errors } from '../errors.js';
import { configSchema, ENV_REF, PROVIDER_TYPES, type Config } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** Absolute path of config.json ('' for an in-memory config); plugin paths resolve against its directory. */
  file: string;
  baseDir: string;
}

export function loadConfigFile(file: string): LoadedConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw Errors.CONFIG_READ(abs, (err as NodeJS.ErrnoException).code ?? String(err));
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw Errors.CONFIG_READ(abs, `not valid JSON: ${(err as Error).message}`);
  }
  return { config: parseConfig(raw, abs), file: abs, baseDir: path.dirname(abs) };
}

/** Validate an already-parsed config object. `source` names it in errors. */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(withDefaultProviderTypes(raw));
  if (!result.success) throw Errors.CONFIG(source, formatIssues(result.error.issues));
  return result.data;
}

/** `"openai": {...}` without a "type" means type "openai", and likewise for every built-in type. */
function withDefaultProviderTypes(raw: unknown): unknown {
  if (!isObject(raw) || !isObject(raw.providers)) return raw;
  const providers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw.providers)) {
    providers[name] =
      isObject(value) && value.type === undefined && (PROVIDER_TYPES as readonly string[]).includes(name)
        ? { type: name, ...value }
        : value;
  }
  return { ...raw, providers };
}

function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => `  - ${formatPath(issue.path)}: ${issue.message}`)
    .join('\n');
}

export function formatPath(parts: readonly PropertyKey[]): string {
  let out = '';
  for (const part of parts) {
    out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Replace every string "env.NAME" inside `value` with the environment variable's value. `where` is the JSON path
 * of `value`, for the error when a variable is not set.
 */
export function resolveEnvRefs<T>(value: T, where: string, env: NodeJS.ProcessEnv = process.env): T {
  return walk(value, where) as T;

  function walk(v: unknown, at: string): unknown {
    if (typeof v === 'string') {
      const m = ENV_REF.exec(v);
      if (!m) return v;
      const name = m[1] as string;
      const resolved = env[name];
      if (resolved === undefined) throw Errors.CONFIG_ENV(at, name);
      return resolved;
    }
    if (Array.isArray(v)) return v.map((item, i) => walk(item, `${at}[${i}]`));
    if (isObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) out[k] = walk(item, `${at}.${k}`);
      return out;
    }
    return v;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
