/**
 * A worker pool as users run it: the real `heimdall start` with server.workers above 1, its log lines parsed, and
 * every process it started killed at teardown whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { waitFor } from './cli.js';
import { REPO } from './fixtures.js';

const BIN = path.join(REPO, 'bin', 'heimdall.cjs');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  pid: number;
  role?: string;
  worker_pid?: number;
  signal?: string | null;
  [key: string]: unknown;
}

/** A port nothing listens on now: the workers of a pool share a port the config names. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Every process of a pool seen so far, killed at teardown whatever happened (only if it is still a heimdall). */
export const spawned = new Set<number>();
t.teardown(() => {
  for (const pid of spawned) {
    try {
      if (process.platform === 'linux' && !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('heimdall')) continue;
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

export interface Pool {
  child: ChildProcess;
  /** The config file it runs on. */
  file: string;
  url: string;
  logs: LogLine[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Start `heimdall start` (the installed command's entry) on a config; resolves once every worker is ready. */
export async function startPool(t: Test, raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env, portFromLog = false): Promise<Pool> {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-workers-'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(raw));
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
  spawned.add(child.pid as number);
  const logs: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const parsed = JSON.parse(line) as LogLine;
      logs.push(parsed);
      if (parsed.role !== 'primary') spawned.add(parsed.pid);
      if (typeof parsed.worker_pid === 'number') spawned.add(parsed.worker_pid);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  await waitFor(() => logs.some((l) => /workers serving at/.test(l.msg)) || child.exitCode !== null, 'the workers to be ready', 30000);
  if (child.exitCode !== null) throw new Error(`the pool exited: ${stderr}`);
  const serving = logs.find((l) => /workers serving at/.test(l.msg)) as LogLine;
  const url = portFromLog ? new URL(String(serving.url)).origin : `http://127.0.0.1:${(raw.server as { port: number }).port}`;
  return { child, file, url, logs, stderr: () => stderr, exited };
}

export interface Answer {
  status: number;
  body: string;
}

/** One request on a connection of its own (no keep-alive: each goes to whichever worker the primary picks). */
export function request(
  url: string,
  options: { body?: unknown; timeoutMs?: number; method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = http.request(url, {
      method: options.method ?? (data === undefined ? 'GET' : 'POST'),
      agent: false,
      headers: { connection: 'close', ...(data === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
      timeout: options.timeoutMs ?? 5000,
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.end(data);
  });
}

export async function workerPids(url: string, requests = 30): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < requests; i++) {
    const res = await request(`${url}/health`);
    const body = JSON.parse(res.body) as { worker: { id: number; pid: number } };
    pids.add(body.worker.pid);
    spawned.add(body.worker.pid);
  }
  return pids;
}

/** `heimdall start` on a config it must refuse: its exit code (or "still running" after 20 s) and its output. */
export async function startRefused(t: Test, raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null | string; stdout: string; stderr: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-workers-'));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(raw));
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
  spawned.add(child.pid as number);
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await Promise.race([new Promise<number | null>((resolve) => child.on('exit', resolve)), sleep(20000).then(() => 'still running')]);
  return { code, stdout, stderr };
}

