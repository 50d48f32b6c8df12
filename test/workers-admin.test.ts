/**
 * One gateway, seen from outside, with several workers: the admin API lives in the primary and applies each plugin
 * change to every worker as one operation (prepare everywhere, then commit everywhere or abort everywhere). The real
 * `heimdall start` with server.workers 2, driven over HTTP as an operator would.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { waitFor } from './helpers/cli.js';
import { probePlugins, versionedBuilds } from './helpers/fixtures.js';
import { chat } from './helpers/gateway.js';
import { freePort, request, spawned, startPool, workerPids } from './helpers/pool.js';

const builds = await versionedBuilds();
const probes = await probePlugins();
const TOKEN = 'pool-admin-token-0123456789abcdef0123456789';
const env = { ...process.env, HEIMDALL_ADMIN_TOKEN: TOKEN };
const auth = { authorization: `Bearer ${TOKEN}` };

interface WorkerView {
  worker: number;
  pid: number;
  status: string;
  sha256?: string;
}
interface PluginView {
  name: string;
  status: string;
  sha256?: string;
  config: Record<string, unknown>;
  workers: WorkerView[];
  last_errors: { code: string; message: string }[];
}

/** A plugin directory holding versioned.so, which a test "rebuilds" by renaming another build over it. */
function workspace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'heimdall-pool-admin-'));
  const plugins = path.join(dir, 'plugins');
  mkdirSync(plugins);
  const file = path.join(plugins, 'versioned.so');
  copyFileSync(builds.A, file);
  const install = (v: 'A' | 'B') => {
    const tmp = `${file}.tmp`;
    copyFileSync(builds[v], tmp);
    renameSync(tmp, file);
  };
  return { dir, plugins, file, install };
}

const versionOf = (body: string) => {
  const content = (JSON.parse(body) as { choices: { message: { content: string } }[] }).choices[0]?.message.content ?? '';
  return /^pre=(\w) post=(\w)$/.exec(content)?.slice(1) ?? [];
};

async function pool(t: Test, ws: ReturnType<typeof workspace>, adminExtra: Record<string, unknown> = {}) {
  const port = await freePort();
  const adminPort = await freePort();
  const p = await startPool(
    t,
    {
      server: { port, workers: 2, watchdog_ms: 2000 },
      log: { level: 'info', requests: false },
      providers: { mock: { type: 'mock', latency_ms: 2 } },
      plugins: [{ path: ws.file }],
      admin: { enabled: true, token: 'env.HEIMDALL_ADMIN_TOKEN', port: adminPort, plugin_dirs: [ws.plugins], ...adminExtra },
    },
    env,
  );
  const admin = `http://127.0.0.1:${adminPort}`;
  const call = async (method: string, route: string, body?: unknown) => {
    const res = await request(`${admin}${route}`, { method, body, headers: auth, timeoutMs: 60_000 });
    return { status: res.status, json: res.body === '' ? undefined : JSON.parse(res.body) };
  };
  return { ...p, admin, call };
}

t.test('reloads across 2 workers during 5,000 requests: none fails, none sees two versions, each lands everywhere at once', async (t) => {
  const ws = workspace();
  const p = await pool(t, ws);
  const url = `${p.url}/v1/chat/completions`;

  const before = (await p.call('GET', '/api/plugins/versioned')).json as PluginView;
  t.equal(before.workers.length, 2, 'the admin API speaks for both workers');
  t.equal(new Set(before.workers.map((w) => w.sha256)).size, 1, 'one file hash in both');
  t.same(new Set(before.workers.map((w) => w.pid)), await workerPids(p.url), 'the workers it lists are those serving');

  const TARGET = 5000;
  const RELOADS = 8;
  let sent = 0;
  let failed = 0;
  let mixed = 0;
  let stop = false;
  const seen = { A: 0, B: 0 };
  // Each reload's window: from the moment its API call returned to the moment the next one began. A request sent
  // and answered wholly inside a window must run the version that reload installed, in whichever worker.
  const windows: { from: number; to: number; version: string }[] = [];
  const answers: { sentAt: number; doneAt: number; version: string }[] = [];
  const clients = Array.from({ length: 8 }, async () => {
    while (!stop || sent < TARGET) {
      sent++;
      const sentAt = performance.now();
      try {
        const res = await request(url, { body: chat('mock/echo', 'which version?'), timeoutMs: 10_000 });
        if (res.status !== 200) {
          failed++;
          continue;
        }
        const [pre, post] = versionOf(res.body);
        if (pre !== post || (pre !== 'A' && pre !== 'B')) mixed++;
        else {
          seen[pre as 'A' | 'B']++;
          answers.push({ sentAt, doneAt: performance.now(), version: pre });
        }
      } catch {
        failed++;
      }
    }
  });
  let version: 'A' | 'B' = 'A';
  for (let i = 0; i < RELOADS; i++) {
    await waitFor(() => sent >= (i + 1) * (TARGET / (RELOADS + 1)), 'traffic', 60_000);
    version = version === 'A' ? 'B' : 'A';
    ws.install(version);
    const last = windows.at(-1);
    if (last !== undefined) last.to = performance.now();
    const res = await p.call('POST', '/api/plugins/versioned/reload');
    t.equal(res.status, 200, `reload ${i + 1} made`);
    windows.push({ from: performance.now(), to: Infinity, version });
    const view = res.json as PluginView;
    t.equal(view.workers.length, 2);
    t.ok(view.workers.every((w) => w.status === 'active' && w.sha256 === view.sha256), `reload ${i + 1}: both workers run the new file`);
  }
  stop = true;
  await Promise.all(clients);

  t.ok(sent >= TARGET, `${sent} requests`);
  t.equal(failed, 0, 'no request failed');
  t.equal(mixed, 0, 'no request saw two versions');
  t.ok(seen.A > 0 && seen.B > 0, `both versions served (A: ${seen.A}, B: ${seen.B})`);
  let checked = 0;
  let stale = 0;
  for (const a of answers) {
    const w = windows.find((w) => a.sentAt >= w.from && a.doneAt <= w.to);
    if (w === undefined) continue;
    checked++;
    if (a.version !== w.version) stale++;
  }
  t.ok(checked > TARGET / 2, `${checked} requests ran wholly between two reloads`);
  t.equal(stale, 0, 'once the API answered, no worker served the previous version');
  t.notOk(p.logs.some((l) => l.level >= 50), 'no error logged');
});

t.test('a change one worker refuses leaves every worker on the old one, and the API names the worker', async (t) => {
  const ws = workspace();
  const p = await pool(t, ws);
  const url = `${p.url}/v1/chat/completions`;
  const before = (await p.call('GET', '/api/plugins/versioned')).json as PluginView;
  ws.install('B');

  // The first worker to Init with this config creates the marker and refuses; the other initialises fine.
  const marker = path.join(ws.dir, 'marker');
  const res = await p.call('PUT', '/api/plugins/versioned/config', { config: { version: 'new', fail_once_marker: marker } });
  t.equal(res.status, 422);
  t.equal(res.json.error.code, 'HEIMDALL_ERR_PLUGIN_INIT', "the refusing worker's own code");
  t.match(res.json.error.message, /^worker \d+ \(pid \d+\) refused: plugin versioned .* Init failed: this process took the marker, so it refuses\..*; no worker changed \(every worker keeps what it had\)$/s);
  const refusedPid = Number(/\(pid (\d+)\)/.exec(res.json.error.message)?.[1]);
  t.ok((await workerPids(p.url)).has(refusedPid), 'it names a worker of the pool');

  const after = (await p.call('GET', '/api/plugins/versioned')).json as PluginView;
  t.same(after.config, {}, 'the config is the old one');
  t.same(after.workers.map((w) => w.sha256), before.workers.map((w) => w.sha256), 'both workers keep the old instance (version A)');
  for (let i = 0; i < 20; i++) {
    const r = await request(url, { body: chat('mock/echo', 'still A?') });
    t.same(versionOf(r.body), ['A', 'A']);
  }
  // The worker that prepared the new instance cleaned it up: one Cleanup beyond the start-ups' none.
  await waitFor(() => p.logs.some((l) => l.msg === 'plugin cleaned up'), 'the prepared instance to be cleaned up', 10_000);
  t.equal(p.logs.filter((l) => l.msg === 'plugin cleaned up').length, 1, 'exactly the one prepared instance was cleaned up');

  // Everywhere at once once nothing refuses (the marker exists now, so no worker refuses).
  const ok = await p.call('PUT', '/api/plugins/versioned/config', { config: { version: 'new', fail_once_marker: marker } });
  t.equal(ok.status, 200);
  t.ok((ok.json as PluginView).workers.every((w) => w.sha256 !== before.sha256), 'both workers now run build B');
  for (let i = 0; i < 10; i++) t.same(versionOf((await request(url, { body: chat() })).body), ['B', 'B']);

  // A refusal every worker gives alike is answered as a single gateway answers it.
  const unknown = await p.call('POST', '/api/plugins/nope/reload');
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'HEIMDALL_ERR_ADMIN_PLUGIN_UNKNOWN');
  t.notMatch(unknown.json.error.message, /worker/);
  const noToken = await request(`${p.admin}/api/plugins`, {});
  t.equal(noToken.status, 401, 'the pool\'s admin API demands the token');
});

t.test('a plugin added through the API is in every worker, in a replacement, and in the saved config', async (t) => {
  const ws = workspace();
  copyFileSync(probes.p1, path.join(ws.plugins, 'p1.so'));
  const p = await pool(t, ws, { persist: true });
  const added = await p.call('POST', '/api/plugins', { path: path.join(ws.plugins, 'p1.so'), position: 0 });
  t.equal(added.status, 201);
  t.equal((added.json as PluginView).workers.length, 2);
  t.ok((added.json as PluginView).workers.every((w) => w.status === 'active'));
  const savedAdd = JSON.parse(readFileSync(p.file, 'utf8')) as { plugins: { path: string; confine?: boolean }[] };
  t.same(savedAdd.plugins.map((s) => [path.basename(s.path), s.confine === true]), [['p1.so', true], ['versioned.so', false]], 'saved, confined');

  // Kill one worker: its replacement starts with the pool's plugin set as it is now, not as config.json said.
  const [victim] = [...(await workerPids(p.url))];
  process.kill(victim as number, 'SIGKILL');
  let list: PluginView[] = [];
  await waitFor(async () => {
    list = ((await p.call('GET', '/api/plugins')).json as { plugins: PluginView[] }).plugins;
    const pids = new Set(list.flatMap((v) => v.workers.map((w) => w.pid)));
    return pids.size === 2 && !pids.has(victim as number);
  }, 'a replacement worker', 30_000);
  for (const pid of await workerPids(p.url)) spawned.add(pid);
  t.same(list.map((v) => v.name), ['p1', 'versioned'], 'the order the API made');
  for (const v of list) t.same(v.workers.map((w) => w.status), ['active', 'active'], `${v.name} is active in both workers, the replacement too`);

  const removed = await p.call('DELETE', '/api/plugins/p1');
  t.equal(removed.status, 204);
  const now = ((await p.call('GET', '/api/plugins')).json as { plugins: PluginView[] }).plugins;
  t.same(now.map((v) => v.name), ['versioned']);

  // admin.persist: the primary wrote each change to config.json (the workers write nothing).
  const saved = JSON.parse(readFileSync(p.file, 'utf8')) as { plugins: { path: string }[] };
  t.same(saved.plugins.map((s) => path.basename(s.path)), ['versioned.so'], 'the removal is saved');
  t.ok(p.logs.filter((l) => /could not save/.test(l.msg)).length === 0);
  rmSync(path.join(ws.plugins, 'p1.so'));
});

t.test('a watched plugin file reloads in every worker', async (t) => {
  const ws = workspace();
  const port = await freePort();
  const p = await startPool(
    t,
    {
      server: { port, workers: 2 },
      log: { level: 'info', requests: false },
      providers: { mock: { type: 'mock' } },
      plugins: [{ path: ws.file, watch: true }],
    },
    env,
  );
  const url = `${p.url}/v1/chat/completions`;
  t.same(versionOf((await request(url, { body: chat() })).body), ['A', 'A']);
  ws.install('B');
  await waitFor(async () => {
    for (let i = 0; i < 10; i++) if (versionOf((await request(url, { body: chat() })).body)[0] !== 'B') return false;
    return true;
  }, 'build B in every worker', 20_000);
  const pids = await workerPids(p.url);
  t.equal(pids.size, 2, 'the same two workers serve: a reload, not a restart');
  t.ok(p.logs.some((l) => /plugin change made in 2 workers/.test(l.msg)), 'the primary applied it to both');
});

t.test("the dashboard's data speaks for every worker: requests from both, hook calls added up, one plugin table", async (t) => {
  const ws = workspace();
  const p = await pool(t, ws, { dashboard: { enabled: true, requests: 100, record: 'always' } });
  const url = `${p.url}/v1/chat/completions`;
  const N = 40;
  for (let i = 0; i < N; i++) t.equal((await request(url, { body: chat('mock/echo', `dash ${i}`) })).status, 200);

  const plugins = (await p.call('GET', '/dashboard/api/plugins')).json as { plugins: { name: string; state: string; workers: number }[] };
  t.match(plugins.plugins, [{ name: 'versioned', state: 'active', workers: 2 }]);

  const requests = ((await p.call('GET', '/dashboard/api/requests?limit=100')).json as { requests: { id: string; at: string; worker: number; status: number }[] }).requests;
  t.equal(requests.length, N, 'every request, from both rings');
  t.equal(new Set(requests.map((r) => r.worker)).size, 2, 'served by both workers');
  t.ok(requests.every((r, i) => i === 0 || (requests[i - 1] as { at: string }).at >= r.at), 'newest first across the workers');
  const one = requests.find((r) => r.worker !== requests[0]?.worker) as { id: string; worker: number };
  const detail = (await p.call('GET', `/dashboard/api/requests/${one.id}`)).json as { id: string; worker: number; events: unknown[] };
  t.equal(detail.id, one.id, "a timeline is found in whichever worker's ring holds it");
  t.equal(detail.worker, one.worker);
  t.ok(detail.events.length > 0);

  const series = ((await p.call('GET', '/dashboard/api/series')).json as { hooks: { plugin: string; hook: string; calls: number[] }[] }).hooks;
  const pre = series.find((s) => s.plugin === 'versioned' && s.hook === 'PreHook');
  t.equal(pre?.calls.reduce((a, b) => a + b, 0), N, "both workers' PreHook calls, added up");
});
