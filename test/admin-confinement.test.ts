/**
 * The admin API's plugin_dirs confinement holds at every load of a plugin it added (POST, reload, enable, config
 * change, watch), against symlinks re-pointed after the first load and against a symlink flipped while loads run;
 * and the admin API's start-up and body guards (loopback unless allowed, a long token, admin.body_limit).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/logger.js';
import { openPlugin, type LocateMethod } from '../src/plugins/confine.js';
import { PluginRegistry } from '../src/plugins/registry.js';
import { createAdminApp } from '../src/server/admin.js';
import { probePlugins, versionedBuilds } from './helpers/fixtures.js';
import { chat, postJson, startGateway, type RunningGateway } from './helpers/gateway.js';

const probes = await probePlugins();
const builds = await versionedBuilds();
const TOKEN = 'admin-confinement-token-0123456789abcdef';
process.env.HEIMDALL_TEST_CONFINE_TOKEN = TOKEN;

/**
 * <root>/plugins (the only plugin dir) holding versions A and B of the "versioned" plugin and the probe p1;
 * <root>/outside and <root>/plugins-evil, which are not plugin dirs, holding version B and the probe p2.
 */
function setup(t: { teardown(fn: () => unknown): void }) {
  const root = mkdtempSync(path.join(tmpdir(), 'heimdall-confine-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'plugins');
  const outside = path.join(root, 'outside');
  const evil = path.join(root, 'plugins-evil');
  for (const d of [dir, outside, evil]) mkdirSync(d);
  copyFileSync(builds.A, path.join(dir, 'A.so'));
  copyFileSync(builds.B, path.join(dir, 'B.so'));
  copyFileSync(probes.p1, path.join(dir, 'p1.so'));
  for (const d of [outside, evil]) {
    copyFileSync(builds.B, path.join(d, 'B.so'));
    copyFileSync(probes.p2, path.join(d, 'p2.so'));
  }
  const admin = { enabled: true, token: 'env.HEIMDALL_TEST_CONFINE_TOKEN', plugin_dirs: [dir] };
  return { root, dir, outside, evil, admin };
}

/** Re-point `link` at `target` in one step, as `ln -sfn` through a rename would: the link never goes missing. */
function point(link: string, target: string): void {
  const tmp = `${link}.tmp`;
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}

/**
 * Flips `link` between targets `a` and `b` from a worker thread, as fast as renames go, until stopped: the swaps land
 * anywhere in the gateway's code, synchronous parts included. stop() resolves to the number of flips.
 */
function flipper(link: string, a: string, b: string): { stop: () => Promise<number> } {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { symlinkSync, renameSync } = require('node:fs');
     const { workerData: { link, a, b, flag } } = require('node:worker_threads');
     let flips = 0;
     while (Atomics.load(flag, 0) === 0) {
       const tmp = link + '.' + flips + '.tmp';
       symlinkSync(flips % 2 === 0 ? b : a, tmp);
       renameSync(tmp, link);
       flips++;
       Atomics.wait(flag, 0, 0, 0.1); // a breath, to leave the cores to the gateway now and then
     }
     require('node:worker_threads').parentPort.postMessage(flips);`,
    { eval: true, workerData: { link, a, b, flag } },
  );
  const done = new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    stop: async () => {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      return done;
    },
  };
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function api(base: string | undefined, method: string, url: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Which build of "versioned" served a request: "A" or "B". */
async function servedBy(gw: RunningGateway): Promise<string> {
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'which version?'));
  return /post=(\w)/.exec(res.json?.choices?.[0]?.message?.content ?? '')?.[1] ?? `status ${res.status}`;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('a symlink re-pointed outside after the first load: reload, config change and enable are refused', async (t) => {
  const { dir, outside, admin } = setup(t);
  const link = path.join(dir, 'current.so');
  point(link, path.join(dir, 'A.so'));
  const gw = await startGateway(t, { providers: { mock: {} }, admin });

  const added = await api(gw.adminUrl, 'POST', '/api/plugins', { path: link });
  t.equal(added.status, 201, 'a symlink inside pointing inside loads');
  t.equal(added.json.sha256, sha(builds.A));
  t.equal(await servedBy(gw), 'A');

  point(link, path.join(outside, 'B.so'));
  const reload = await api(gw.adminUrl, 'POST', '/api/plugins/versioned/reload');
  t.equal(reload.status, 403, 'reload');
  t.match(reload.json, { error: { code: 'HEIMDALL_ERR_ADMIN_PATH' } });
  t.match(reload.json?.error?.message, `${link} -> ${path.join(outside, 'B.so')}`, 'the refusal says where the link points');
  const configured = await api(gw.adminUrl, 'PUT', '/api/plugins/versioned/config', { config: { x: '1' } });
  t.equal(configured.status, 403, 'config change');
  t.match(configured.json, { error: { code: 'HEIMDALL_ERR_ADMIN_PATH' } });
  const status = (await api(gw.adminUrl, 'GET', '/api/plugins/versioned')).json;
  t.match(status, { status: 'active', sha256: sha(builds.A), config: {} }, 'the old instance, with its config, is still there');
  t.equal(status.last_errors.length, 2);
  t.equal(await servedBy(gw), 'A', 'and it keeps serving');

  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins/versioned/disable')).json.status, 'disabled');
  const enable = await api(gw.adminUrl, 'POST', '/api/plugins/versioned/enable');
  t.equal(enable.status, 403, 'enable');
  t.match(enable.json, { error: { code: 'HEIMDALL_ERR_ADMIN_PATH' } });
  t.equal(gw.gateway.plugins.active.length, 0, 'nothing was loaded');

  point(link, path.join(dir, 'B.so'));
  const back = await api(gw.adminUrl, 'POST', '/api/plugins/versioned/enable');
  t.equal(back.status, 200, 'pointing inside again loads');
  t.equal(back.json.sha256, sha(builds.B));
  t.equal(await servedBy(gw), 'B');
});

t.test('a config.json plugin is the operator\'s: not confined', async (t) => {
  const { dir, outside, admin } = setup(t);
  const link = path.join(dir, 'current.so');
  point(link, path.join(dir, 'A.so'));
  const gw = await startGateway(t, { providers: { mock: {} }, admin, plugins: [{ path: link }] });
  point(link, path.join(outside, 'B.so'));
  const reload = await api(gw.adminUrl, 'POST', '/api/plugins/versioned/reload');
  t.equal(reload.status, 200);
  t.equal(reload.json.sha256, sha(builds.B));
});

t.test('a plugin added through the API and persisted stays confined after a restart', async (t) => {
  const { root, dir, outside, admin } = setup(t);
  const link = path.join(dir, 'current.so');
  point(link, path.join(dir, 'A.so'));
  const file = path.join(root, 'config.json');
  const raw = { providers: { mock: {} }, admin: { ...admin, persist: true }, plugins: [] };
  writeFileSync(file, JSON.stringify(raw));
  const first = await startGateway(t, raw, root, file);
  t.equal((await api(first.adminUrl, 'POST', '/api/plugins', { path: link })).status, 201);
  await first.close();
  const persisted = JSON.parse(readFileSync(file, 'utf8'));
  t.match(persisted.plugins, [{ path: link, confine: true }], 'the entry says it is confined');

  const second = await startGateway(t, persisted, root, file);
  t.equal(await servedBy(second), 'A');
  point(link, path.join(outside, 'B.so'));
  const reload = await api(second.adminUrl, 'POST', '/api/plugins/versioned/reload');
  t.equal(reload.status, 403, 'after the restart, a reload is checked as before it');
  t.match(reload.json, { error: { code: 'HEIMDALL_ERR_ADMIN_PATH' } });
  t.equal(await servedBy(second), 'A', 'and the old instance keeps serving');
});

t.test('with watch: true, a link re-pointed outside makes the watch-triggered reload refuse, logged', async (t) => {
  const { dir, outside, admin } = setup(t);
  const link = path.join(dir, 'current.so');
  point(link, path.join(dir, 'A.so'));
  const gw = await startGateway(t, { providers: { mock: {} }, admin });
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins', { path: link, watch: true })).status, 201);

  point(link, path.join(outside, 'B.so'));
  const refused = () => gw.logs.find((l) => l.code === 'HEIMDALL_ERR_ADMIN_PATH' && /reload failed/.test(l.msg));
  await waitFor('the refused watch reload', () => refused() !== undefined);
  t.match(refused(), { level: 50, plugin: 'versioned', msg: /previous instance keeps serving/ });
  t.equal(gw.gateway.plugins.status()[0]?.sha256, sha(builds.A));
  t.equal(await servedBy(gw), 'A', 'the old code keeps serving');

  point(link, path.join(dir, 'B.so'));
  await waitFor('the watch reload of an inside build', () => gw.gateway.plugins.status()[0]?.sha256 === sha(builds.B));
  t.equal(await servedBy(gw), 'B', 'and the watch still reloads what is inside');
});

t.test('a sibling directory whose name starts with a plugin dir\'s name is not inside it', async (t) => {
  const { dir, evil, admin } = setup(t);
  const gw = await startGateway(t, { providers: { mock: {} }, admin });
  const direct = await api(gw.adminUrl, 'POST', '/api/plugins', { path: path.join(evil, 'p2.so') });
  t.equal(direct.status, 403, `${evil} is not inside ${dir}`);
  t.match(direct.json, { error: { code: 'HEIMDALL_ERR_ADMIN_PATH' } });
  const link = path.join(dir, 'current.so');
  point(link, path.join(dir, 'A.so'));
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins', { path: link })).status, 201);
  point(link, path.join(evil, 'B.so'));
  const reload = await api(gw.adminUrl, 'POST', '/api/plugins/versioned/reload');
  t.equal(reload.status, 403, 'nor through a link re-pointed there');
  t.equal(await servedBy(gw), 'A');
});

t.test('a symlink flipped between an inside and an outside plugin during POST/DELETE: the outside code never runs', async (t) => {
  const { root, dir, outside, admin } = setup(t);
  const trace = path.join(root, 'trace.jsonl');
  writeFileSync(trace, '');
  const inside = path.join(dir, 'p1.so');
  const outsideFile = path.join(outside, 'p2.so');
  const link = path.join(dir, 'flip.so');
  point(link, inside);
  const gw = await startGateway(t, { log: { level: 'warn' }, providers: { mock: {} }, admin });

  const flipping = flipper(link, inside, outsideFile);
  let flips = 0;

  const outcomes: Record<string, number> = {};
  let outsideLoaded = 0;
  let undeleted = 0;
  let tries = 0;
  const deadline = Date.now() + 12_000;
  try {
    for (; tries < 1000 && Date.now() < deadline; tries++) {
      const res = await api(gw.adminUrl, 'POST', '/api/plugins', { path: link, config: { trace } });
      const outcome = res.status === 201 ? 'loaded' : `${res.status} ${res.json?.error?.code}`;
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (res.status === 201) {
        if (res.json.name !== 'p1' || res.json.sha256 !== sha(inside)) outsideLoaded++;
        if ((await api(gw.adminUrl, 'DELETE', `/api/plugins/${res.json.name}`)).status !== 204) undeleted++;
      }
    }
  } finally {
    flips = await flipping.stop();
  }
  const inits = readFileSync(trace, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.hook === 'init');
  const outsideInits = inits.filter((l) => l.plugin !== 'p1').length;
  t.comment(`${tries} POSTs during ${flips} flips: ${JSON.stringify(outcomes)}; outside Init calls: ${outsideInits}`);
  t.ok(tries >= 200, `${tries} racing POSTs`);
  t.ok(flips >= tries, `${flips} flips`);
  t.ok((outcomes.loaded ?? 0) > 0 && (outcomes['403 HEIMDALL_ERR_ADMIN_PATH'] ?? 0) > 0, 'both sides of the flip were met');
  t.same(Object.keys(outcomes).sort(), ['403 HEIMDALL_ERR_ADMIN_PATH', 'loaded'], 'nothing but loads and refusals');
  t.equal(undeleted, 0, 'every loaded plugin was deleted again');
  t.equal(outsideInits, 0, 'the outside plugin\'s Init never ran');
  t.equal(outsideLoaded, 0, 'no load answered with the outside file');
  t.equal(inits.length, outcomes.loaded, 'each load ran the inside plugin\'s Init once');
});

t.test('the open file is located, not the path: both ways of locating it refuse a flipped symlink', async (t) => {
  const { dir, outside } = setup(t);
  const inside = path.join(dir, 'p1.so');
  const link = path.join(dir, 'flip.so');
  point(link, inside);
  const methods: LocateMethod[] = process.platform === 'linux' ? ['proc', 'stat'] : ['stat'];
  for (const method of methods) {
    const flipping = flipper(link, inside, path.join(outside, 'p2.so'));
    const seen = { inside: 0, refused: 0, escaped: 0 };
    const insideBytes = readFileSync(inside);
    for (let i = 0; i < 3000; i++) {
      try {
        const { fd } = openPlugin(link, [dir], method);
        const bytes = readFileSync(fd);
        if (bytes.equals(insideBytes)) seen.inside++;
        else seen.escaped++;
      } catch (err) {
        if ((err as { code?: string }).code !== 'HEIMDALL_ERR_ADMIN_PATH') throw err;
        seen.refused++;
      }
    }
    const flips = await flipping.stop();
    t.comment(`${method}: ${JSON.stringify(seen)} during ${flips} flips`);
    t.equal(seen.escaped, 0, `${method}: no outside bytes were ever read`);
    t.ok(seen.inside > 0 && seen.refused > 0, `${method}: both sides met`);
  }
});

t.test('an admin body over admin.body_limit gets 413', async (t) => {
  const { dir, admin } = setup(t);
  const gw = await startGateway(t, { providers: { mock: {} }, admin: { ...admin, body_limit: 1024 } });
  const big = await api(gw.adminUrl, 'POST', '/api/plugins', { path: path.join(dir, 'p1.so'), config: { pad: 'x'.repeat(2000) } });
  t.equal(big.status, 413);
  t.match(big.json, { error: { code: 'HEIMDALL_ERR_ADMIN_BODY_TOO_LARGE', type: 'invalid_request_error', message: /1024 bytes \(admin\.body_limit\)/ } });
  t.equal(gw.gateway.plugins.active.length, 0);
  t.equal((await api(gw.adminUrl, 'POST', '/api/plugins', { path: path.join(dir, 'p1.so') })).status, 201, 'a body within it is served');
});

t.test('a non-loopback admin.host needs admin.allow_remote', async (t) => {
  const { admin } = setup(t);
  for (const host of ['0.0.0.0', '::', '192.0.2.1', 'admin.example.com']) {
    await t.rejects(startGateway(t, { providers: { mock: {} }, admin: { ...admin, host } }), {
      code: 'HEIMDALL_ERR_CONFIG',
      message: /admin\.host: .* is not a loopback address.*admin\.allow_remote: true/s,
    }, host);
  }
  const gw = await startGateway(t, { providers: { mock: {} }, admin: { ...admin, host: 'localhost' } });
  t.ok(gw.adminUrl, 'localhost is loopback');
  // Allowed remote: checked without listening, to open no port beyond this machine.
  const config = parseConfig({ providers: { mock: {} }, admin: { ...admin, host: '0.0.0.0', allow_remote: true } }, 'test config');
  const registry = new PluginRegistry(createLogger('silent'));
  const app = createAdminApp({ config: config.admin, control: registry, baseDir: process.cwd(), log: createLogger('silent') });
  t.ok(app, 'with allow_remote: true it starts');
  await app.close();
});

t.test('an admin token shorter than 32 characters refuses to start, naming the variable, not the value', async (t) => {
  const { admin } = setup(t);
  const short = 'k7Qx9pLm2Z';
  process.env.HEIMDALL_TEST_SHORT_TOKEN = short;
  const err = await startGateway(t, { providers: { mock: {} }, admin: { ...admin, token: 'env.HEIMDALL_TEST_SHORT_TOKEN' } }).then(
    () => undefined,
    (e: unknown) => e as Error & { code: string },
  );
  t.equal(err?.code, 'HEIMDALL_ERR_CONFIG');
  t.match(err?.message, /HEIMDALL_TEST_SHORT_TOKEN.*at least 32 characters/s);
  t.notMatch(`${err?.message} ${err?.stack}`, short, 'the token is not in the error');
  process.env.HEIMDALL_TEST_SHORT_TOKEN = 'x'.repeat(32);
  await startGateway(t, { providers: { mock: {} }, admin: { ...admin, token: 'env.HEIMDALL_TEST_SHORT_TOKEN' } });
  t.pass('32 characters are enough');
});
