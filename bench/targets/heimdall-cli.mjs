// Heimdall as an operator starts it: `heimdall start --config FILE` (bin/heimdall.cjs), with server.workers set, so
// that the benchmark can compare a pool of workers with a single process. The config, written into the OS temp
// directory: the OpenAI provider pointed at the benchmark upstream, N passthrough plugins, access lines off (log
// level warn), the admin API off. Reports the gateway's URL over IPC once every worker answers GET /health.
//
//   node bench/targets/heimdall-cli.mjs <upstreamUrl> <workers> [plugin.so ...]
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STARTUP_MS = 30_000;
const STOP_MS = 15_000;

const [upstream, workersArg, ...plugins] = process.argv.slice(2);
const workers = Number(workersArg);
if (!upstream || !Number.isInteger(workers) || workers < 1) {
  console.error('usage: node bench/targets/heimdall-cli.mjs <upstreamUrl> <workers> [plugin.so ...]');
  process.exit(2);
}

const port = await freePort();
const dir = await mkdtemp(path.join(os.tmpdir(), 'heimdall-bench-'));
const file = path.join(dir, 'config.json');
const config = {
  server: { host: '127.0.0.1', port, workers, shutdown_timeout_ms: 2000 },
  log: { level: 'warn' },
  // As many upstream connections per worker as the benchmark opens to the gateway: the default (128) would cap one
  // worker at 128 / latency requests per second, and the test would show that cap instead of the CPU's.
  providers: { openai: { type: 'openai', base_url: `${upstream}/v1`, connections: 512 } },
  plugins: plugins.map((p) => ({ path: path.resolve(p) })), // relative paths would be read against the temp dir
  admin: { enabled: false },
};
await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);

// The gateway's stdout (log lines, warnings and up only) goes to the benchmark's stderr, where a failure shows.
const child = spawn(process.execPath, [path.join(repo, 'bin', 'heimdall.cjs'), 'start', '--config', file], {
  cwd: repo,
  stdio: ['ignore', process.stderr, 'inherit'],
});
let exited = false;
const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
exit.then(() => (exited = true));

const url = `http://127.0.0.1:${port}`;
try {
  await ready(url);
} catch (err) {
  console.error(`heimdall-cli: ${err.message}`);
  await stop();
  process.exit(1);
}
process.send?.({ url });

process.on('message', async (m) => {
  if (m !== 'stop') return;
  await stop();
  process.exit(0);
});
process.on('disconnect', async () => {
  await stop();
  process.exit(0);
});

/** Resolves once GET /health has been answered by every worker (each probe on a new connection, which the primary
 * hands to the workers in turn), within STARTUP_MS. */
async function ready(base) {
  const deadline = Date.now() + STARTUP_MS;
  const seen = new Set();
  while (Date.now() < deadline) {
    if (exited) {
      const { code, signal } = await exit;
      throw new Error(`heimdall start exited (${signal ?? `code ${code}`}) before it served`);
    }
    try {
      const res = await request(`${base}/health`, { reset: true, headersTimeout: 2000, bodyTimeout: 2000 });
      const health = await res.body.json();
      if (res.statusCode === 200) {
        seen.add(health.worker?.pid ?? child.pid);
        if (seen.size >= workers) return;
        continue;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`heimdall start did not answer GET /health from ${workers} worker(s) within ${STARTUP_MS / 1000} s`);
}

/** SIGTERM (the gateway drains, then exits), SIGKILL past STOP_MS; the temp config goes either way. */
async function stop() {
  if (!exited) {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_MS);
    await exit;
    clearTimeout(killer);
  }
  await rm(dir, { recursive: true, force: true });
}

/** A port nothing listens on now: bound to port 0, read, closed. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port: p } = server.address();
      server.close(() => resolve(p));
    });
  });
}
