/**
 * Starting a real gateway on loopback for a test, with its logs captured as parsed JSON lines.
 */
import { Writable } from 'node:stream';
import { parseConfig, type LoadedConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logger.js';
import { createGateway, type Gateway } from '../../src/server/app.js';

export interface LogLine {
  level: number;
  msg: string;
  plugin?: string;
  hook?: string;
  [key: string]: unknown;
}

export interface RunningGateway {
  url: string;
  /** The admin API's address, when the config enables it. */
  adminUrl: string | undefined;
  gateway: Gateway;
  logs: LogLine[];
  close(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startGateway(
  t: Teardown,
  raw: Record<string, unknown>,
  baseDir = process.cwd(),
  file = '',
): Promise<RunningGateway> {
  const config = parseConfig({ log: { level: 'info' }, ...raw }, 'test config');
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  if (config.admin.enabled) config.admin.port = 0;
  const loaded: LoadedConfig = { config, file, baseDir };
  const gateway = await createGateway(loaded, { logger: createLogger(config.log.level, sink) });
  const { url: address, adminUrl } = await gateway.listen('127.0.0.1', 0);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await gateway.close();
  };
  t.teardown(close);
  return { url: address, adminUrl, gateway, logs, close };
}

/** POST JSON and read the answer as text + parsed JSON (when it is JSON). */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string; json: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .map((event) => event.trim())
    .filter((event) => event.startsWith('data: '))
    .map((event) => event.slice('data: '.length));
}

export const chat = (model = 'mock/echo', content = 'hello there', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content }],
  ...extra,
});
