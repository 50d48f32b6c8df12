// The cost of each host-service call (ABI 1.2) from an inline hook, with the memory and the redis backends: a hook
// that makes 100 calls of one function, timed, less the same hook making none, divided by 100. Every call answers
// from this process (the redis backend from its local view: nothing here waits on the network), so the numbers are
// the koffi callback into JS, the copy of the arguments and the service's own work.
//
// Run by bench/run.mjs in a child process of its own; `node bench/host.mjs` prints the same JSON. The redis rows need
// redis-server on the PATH (a private one is started on a free port); without it they are left out.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import koffi from 'koffi';
import pino from 'pino';
import { configureHost, hostServices, releaseHost } from '../dist/host/services.js';
import { parseConfig } from '../dist/config/load.js';
import { loadPlugin } from '../dist/plugins/loader.js';
import { measure } from './micro.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const CALLS = 100;
export const OPS = ['log (dropped: below the level)', 'log (written)', 'metric_record (counter)', 'metric_record (histogram)',
  'state_set', 'state_get', 'kv_get (hit)', 'kv_set', 'kv_incr', 'kv_cas'];


async function build() {
  const dir = path.join(repo, 'build', 'bench');
  await mkdir(dir, { recursive: true });
  const out = path.join(dir, `hostcalls${process.platform === 'darwin' ? '.dylib' : '.so'}`);
  await promisify(execFile)('cc', ['-shared', '-fPIC', '-O2', '-I', path.join(repo, 'native', 'include'), '-o', out, path.join(here, 'plugins', 'hostcalls.c')]);
  return out;
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedis() {
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined;
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 500; i++) {
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  return undefined;
}

async function runBackend(file, backend, url) {
  const raw = { providers: { mock: {} }, host: { kv: { backend, redis: { url: url ?? 'redis://127.0.0.1:1' } } } };
  // Logs at info to /dev/null: a written line costs what pino costs.
  const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const services = await configureHost(parseConfig(raw, 'bench').host, log);
  const plugin = await loadPlugin(file, { config: {}, takenNames: new Set() });
  const set = koffi.load(file).func('void bench_hostcalls_set(int which, uint64_t request)');
  const handle = hostServices().states.begin('bench');
  const ctx = Buffer.from('{}');
  const req = Buffer.from('{}');
  const hook = () => {
    const r = plugin.preHook(ctx, req);
    if (r.kind !== 'continue') throw new Error('the bench hook failed');
    return r;
  };
  set(0, handle);
  const base = measure(hook);
  const rows = {};
  for (let op = 1; op <= OPS.length; op++) {
    set(op, handle);
    rows[OPS[op - 1]] = Math.max(0, (measure(hook) - base) / CALLS);
  }
  await plugin.close();
  await releaseHost(services);
  return { hook_without_calls_ns: base, per_call_ns: rows };
}

export async function runHostBench() {
  const file = await build();
  const out = { calls_per_hook: CALLS, memory: await runBackend(file, 'memory') };
  const redis = await startRedis();
  if (redis !== undefined) {
    try {
      out.redis = await runBackend(file, 'redis', redis.url);
    } finally {
      redis.stop();
    }
  }
  return out;
}

/** The table `npm run bench` prints: ns per call, per backend. */
export function printHostCalls(r) {
  const backends = ['memory', 'redis'].filter((b) => r[b] !== undefined);
  const rows = OPS.map((op) => [op, ...backends.map((b) => String(Math.round(r[b].per_call_ns[op])))]);
  const head = ['host call (inline hook)', ...backends.map((b) => `${b} ns`)];
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((row) => row[i].length)));
  for (const row of [head, ...rows]) console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  console.log(`(each call's cost inside a hook making ${r.calls_per_hook} of them, less the hook making none; no call waits on the network)\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await runHostBench();
  if (process.send) process.send(result, () => process.exit(0));
  else console.log(JSON.stringify(result, null, 2));
}
