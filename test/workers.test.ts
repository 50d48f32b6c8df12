/**
 * The worker pool (docs/workers.md), as users run it: the real `heimdall start` with server.workers 2. Two workers
 * share the port; one killed by a segfault is replaced while traffic goes on; one wedged by an inline plugin's
 * infinite loop is killed by the watchdog and replaced while the other keeps serving; SIGTERM drains a slow request
 * before the primary exits; and what the pool can't do yet is refused at config load.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { waitFor } from './helpers/cli.js';
import { probePlugins } from './helpers/fixtures.js';
import { chat } from './helpers/gateway.js';
import { startUpstream } from './helpers/upstream.js';
import { freePort, request, sleep, spawned, startPool, startRefused, workerPids } from './helpers/pool.js';

const probes = await probePlugins();
const WATCHDOG_MS = 1000;


t.test('a pool of two workers', async (t) => {
  const port = await freePort();
  // Without UV_THREADPOOL_SIZE, so that the command sizes it (4 + plugin_threads) and the workers inherit it.
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  const pool = await startPool(
    t,
    {
      server: { port, workers: 2, watchdog_ms: WATCHDOG_MS, plugin_threads: 6 },
      log: { level: 'info', requests: false },
      providers: { mock: { type: 'mock' } },
      plugins: [{ path: probes.misbehave }],
    },
    env,
  );

  let pids = new Set<number>();
  t.test('both workers serve, each with its own id and pid in /health', async (t) => {
    pids = await workerPids(pool.url);
    t.equal(pids.size, 2, 'two different pids answered');
    t.notOk(pids.has(pool.child.pid as number), 'the primary serves no request itself');
    const res = await request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', 'through a worker') });
    t.equal(res.status, 200);
    t.match(res.body, /through a worker/);
    if (process.platform === 'linux') {
      for (const pid of pids) {
        const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        t.ok(environ.includes('UV_THREADPOOL_SIZE=10'), `worker ${pid} has the thread pool the command sized`);
      }
    }
  });

  t.test('/metrics and /health answer for the whole pool, whichever worker is asked', async (t) => {
    for (let i = 0; i < 6; i++) await request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', `count me ${i}`) });
    const health = JSON.parse((await request(`${pool.url}/health`)).body) as { status: string; workers: { worker: { pid: number } }[]; missing: unknown[] };
    t.equal(health.status, 'ok');
    t.same(new Set(health.workers.map((w) => w.worker.pid)), pids, 'every worker\'s own body');
    t.same(health.missing, []);
    for (let i = 0; i < 4; i++) {
      const scrape = (await request(`${pool.url}/metrics`)).body;
      const requests = [...scrape.matchAll(/^heimdall_requests_total\{worker="(\d+)",[^}]*route="\/v1\/chat\/completions"[^}]*\} (\d+)/gm)];
      t.same(new Set(requests.map((m) => m[1])).size, 2, 'a scrape holds both workers\' counters');
      t.equal(requests.reduce((sum, m) => sum + Number(m[2]), 0) >= 6, true, 'which add up to what the pool served');
      t.equal(scrape.match(/^# TYPE heimdall_requests_total /gm)?.length, 1, 'each family is declared once');
      t.match(scrape, /^heimdall_pool_workers_unanswered 0$/m);
    }
  });

  t.test('a worker that segfaults under traffic is replaced; only what it held is lost', async (t) => {
    const [victim] = [...pids];
    if (victim === undefined) throw new Error('no worker pid from the test before');
    const CONCURRENCY = 4;
    const TOTAL = 160;
    let sent = 0;
    let killedAt = Infinity;
    const results: { sentAt: number; ok: boolean }[] = [];
    const client = async () => {
      while (sent < TOTAL) {
        sent++;
        if (sent === 30) {
          killedAt = Date.now();
          process.kill(victim, 'SIGSEGV');
        }
        const sentAt = Date.now();
        try {
          const res = await request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', 'steady traffic'), timeoutMs: 2000 });
          results.push({ sentAt, ok: res.status === 200 });
        } catch {
          results.push({ sentAt, ok: false });
        }
        await sleep(10);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    const failed = results.filter((r) => !r.ok);
    const afterKill = results.filter((r) => r.sentAt >= killedAt);
    t.ok(afterKill.length >= 100, `traffic went on after the kill (${afterKill.length} requests)`);
    t.ok(failed.length <= CONCURRENCY, `at most the requests in flight at the kill were lost (${failed.length} of ${results.length})`);
    t.comment(`requests lost to the segfault: ${failed.length} of ${results.length}`);

    await waitFor(() => pool.logs.some((l) => l.role === 'primary' && l.worker_pid === victim && l.signal === 'SIGSEGV'), 'the primary to log the death', 5000);
    const death = pool.logs.find((l) => l.role === 'primary' && l.worker_pid === victim && l.signal === 'SIGSEGV') as LogLine;
    t.equal(death.level, 50, 'logged as an error');
    // Sent from outside, the signal finds the worker between hooks as a rule (then it names the suspects), or in one.
    t.match(death.msg, /died of SIGSEGV(; replacing it.*misbehave \(inline\)| while running misbehave's \w+ \(for \d+ ms\))/, 'it names the signal and the plugins in the worker');

    let now = new Set<number>();
    await waitFor(() => pool.logs.filter((l) => l.role === 'primary' && /ready/.test(l.msg)).length >= 3, 'a new worker', 10000);
    now = await workerPids(pool.url);
    t.equal(now.size, 2, 'two workers again');
    t.notOk(now.has(victim), 'the dead one is gone');
    const ready = pool.logs.filter((l) => l.role === 'primary' && /ready/.test(l.msg)).at(-1) as LogLine;
    t.comment(`a crashed worker was replaced (ready to serve) ${ready.time - death.time} ms after the primary saw it die`);
    pids = now;
  });

  t.test('an inline plugin that loops forever: the watchdog kills its worker, the other keeps serving', async (t) => {
    const readyBefore = pool.logs.filter((l) => l.role === 'primary' && /ready/.test(l.msg)).length;
    const wedgedAt = Date.now();
    const wedged = request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', 'trigger:loop'), timeoutMs: 10000 }).then(
      (res) => res.status,
      () => 'lost',
    );
    let ok = 0;
    let lost = 0;
    const until = Date.now() + WATCHDOG_MS + 1500;
    while (Date.now() < until) {
      try {
        const res = await request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', 'meanwhile'), timeoutMs: 500 });
        if (res.status === 200) ok++;
        else lost++;
      } catch {
        lost++;
      }
      await sleep(20);
    }
    t.ok(ok >= 20, `requests kept flowing while a worker was wedged (${ok} answered, ${lost} lost)`);
    t.ok(lost <= 2, 'at most the connection handed to the wedged worker was lost');
    t.equal(await wedged, 'lost', 'the request that wedged its worker gets no answer');

    await waitFor(() => pool.logs.some((l) => l.role === 'primary' && /^watchdog:/.test(l.msg)), 'the watchdog', WATCHDOG_MS + 3000);
    const kill = pool.logs.find((l) => l.role === 'primary' && /^watchdog:/.test(l.msg)) as LogLine;
    t.equal(kill.level, 50);
    t.match(kill, { watchdog_ms: WATCHDOG_MS, plugins: ['misbehave'] });
    t.ok((kill.stalled_ms as number) > WATCHDOG_MS && (kill.stalled_ms as number) < WATCHDOG_MS + 1000, `killed after ${String(kill.stalled_ms)} ms stuck`);
    t.match(kill.msg, /stuck for \d+ ms.*killing it with SIGKILL \(running: misbehave's PreHook \(for \d+ ms\)\)/, 'it names the hook that spins');
    const running = (kill.running as { plugin: string; hook: string; calls: number; for_ms: number }[])[0];
    t.match(running, { plugin: 'misbehave', hook: 'PreHook', calls: 1 });
    // The loop's last beat came up to a beat interval (watchdog_ms / 4) before the hook began.
    const forMs = running?.for_ms ?? 0;
    t.ok(forMs >= WATCHDOG_MS * 0.75 && forMs <= (kill.stalled_ms as number) + 50, `the hook had been running for ${forMs} ms (the loop stalled for ${String(kill.stalled_ms)})`);
    t.ok(kill.time - wedgedAt < WATCHDOG_MS + 1000, `the kill came ${kill.time - wedgedAt} ms after the request that wedged it`);
    const death = pool.logs.find((l) => l.role === 'primary' && l.watchdog === true);
    t.match(death, { signal: 'SIGKILL', msg: /killed by the watchdog .* while running misbehave's PreHook/ });

    await waitFor(() => pool.logs.filter((l) => l.role === 'primary' && /ready/.test(l.msg)).length > readyBefore, 'a new worker', 10000);
    const ready = pool.logs.filter((l) => l.role === 'primary' && /ready/.test(l.msg)).at(-1) as LogLine;
    t.comment(`watchdog: killed ${kill.time - wedgedAt} ms after the wedging request (stalled_ms ${String(kill.stalled_ms)}), ` +
      `replacement ready ${ready.time - kill.time} ms after the kill; ${ok} requests answered and ${lost} lost meanwhile`);
    t.equal((await workerPids(pool.url)).size, 2, 'two workers again');
  });

  t.test('a hook that segfaults: the primary names the plugin and the hook, read from the dead worker\'s flight record', async (t) => {
    const res = await request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', 'trigger:segv'), timeoutMs: 5000 }).then(
      (r) => r.status,
      () => 'lost',
    );
    t.equal(res, 'lost', 'the request that crashed its worker gets no answer');
    await waitFor(() => pool.logs.some((l) => l.role === 'primary' && /died of SIGSEGV while running/.test(l.msg)), 'the death', 5000);
    const death = pool.logs.find((l) => l.role === 'primary' && /died of SIGSEGV while running/.test(l.msg)) as LogLine;
    t.match(death.msg, /^worker \d+ \(pid \d+\) died of SIGSEGV while running misbehave's PreHook \(for \d+ ms\); replacing it$/);
    t.match(death.running, [{ plugin: 'misbehave', hook: 'PreHook', calls: 1 }]);
    await waitFor(async () => (await workerPids(pool.url, 10)).size === 2, 'two workers again', 10000);
  });
});

t.test('SIGTERM drains every worker: a slow request in flight completes, then the primary exits 0', async (t) => {
  const port = await freePort();
  const up = await startUpstream(t); // answers model "slow" after 2 s
  const pool = await startPool(t, {
    server: { port, workers: 2, shutdown_timeout_ms: 5000 },
    log: { level: 'info', requests: false },
    providers: { openai: { base_url: up.baseUrl } },
  });
  const slow = request(`${pool.url}/v1/chat/completions`, { body: chat('openai/slow', 'take your time'), timeoutMs: 8000 });
  await waitFor(() => up.seen.length === 1, 'the request at the upstream', 10_000);
  pool.child.kill('SIGTERM');
  const res = await slow;
  t.equal(res.status, 200, 'the request in flight was answered');
  t.match(res.body, /take your time/);
  const code = await Promise.race([pool.exited, sleep(10000).then(() => 'still running')]);
  t.equal(code, 0, 'the primary exits 0');
  t.equal(pool.logs.filter((l) => l.role === 'primary' && /^worker \d+ exited$/.test(l.msg) && l.code === 0).length, 2, 'both workers exited 0');
});

t.test('a signal to every process at once (Ctrl-C, systemd) is one drain, not a cut', async (t) => {
  const port = await freePort();
  // A real upstream that answers model "slow" after 2 s: once it has all four requests, each is in a worker's hands.
  const up = await startUpstream(t);
  const pool = await startPool(t, {
    server: { port, workers: 2, shutdown_timeout_ms: 5000 },
    log: { level: 'info', requests: false },
    providers: { openai: { base_url: up.baseUrl } },
  });
  const pids = await workerPids(pool.url);
  const slow = [0, 1, 2, 3].map((i) => request(`${pool.url}/v1/chat/completions`, { body: chat('openai/slow', `slow ${i}`), timeoutMs: 8000 }));
  await waitFor(() => up.seen.length === 4, 'the four requests at the upstream', 10_000);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  pool.child.kill('SIGTERM');
  const answers = await Promise.all(slow.map((p) => p.catch((err: Error) => ({ status: 0, body: err.message }))));
  t.same(answers.map((a) => a.status), [200, 200, 200, 200], 'every request in flight was answered');
  t.equal(await Promise.race([pool.exited, sleep(10000).then(() => 'still running')]), 0);
});

t.test('port 0, a replaced worker, and /health while a slot is down', async (t) => {
  const pool = await startPool(t, {
    server: { port: 0, workers: 2 },
    log: { level: 'info', requests: false },
    providers: { mock: { type: 'mock' } },
  }, process.env, true);
  const pids = await workerPids(pool.url);
  const [victim] = [...pids];
  process.kill(victim as number, 'SIGKILL');
  // Once the primary knows (a connection handed to a worker that has just died waits for nothing: see workers.md).
  await waitFor(() => pool.logs.some((l) => l.role === 'primary' && l.worker_pid === victim && /died of SIGKILL/.test(l.msg)), 'the death to be seen', 5000);
  const during = JSON.parse((await request(`${pool.url}/health`)).body) as { status: string; missing: { state: string }[] };
  t.equal(during.status, 'degraded', 'a slot without a serving worker is not "ok"');
  t.equal(during.missing.length, 1);
  let replaced = false;
  for (const until = Date.now() + 15000; !replaced && Date.now() < until; await sleep(200)) {
    const now = await workerPids(pool.url, 10);
    replaced = now.size === 2 && !now.has(victim as number);
  }
  t.ok(replaced, 'a replacement serves beside the other worker');
  t.notOk(pool.logs.some((l) => /EADDRINUSE/.test(l.msg) || /crash-looping/.test(l.msg)), 'the replacement listens on the same port 0 gave');
  t.equal(JSON.parse((await request(`${pool.url}/health`)).body).status, 'ok');
});

t.test('a worker that cannot start stops the start, as a single process does', async (t) => {
  const { code, stdout, stderr } = await startRefused(t, {
    server: { port: await freePort(), workers: 2 },
    providers: { mock: { type: 'mock' } },
    plugins: [{ path: probes.p1, config: { init_status: '1', init_output: 'api_url is required' } }],
  });
  t.equal(code, 1, 'the primary exits 1');
  t.match(stderr, /HEIMDALL_ERR_PLUGIN_INIT: plugin p1 .* refused to start: Init failed: api_url is required/, 'the worker says why');
  t.match(stdout, /worker \d+ could not start \(exit code 1\); stopping/);
});

t.test('an admin API the primary cannot serve stops the start before any worker runs', async (t) => {
  const { code, stdout, stderr } = await startRefused(t, {
    server: { port: await freePort(), workers: 2 },
    providers: { mock: { type: 'mock' } },
    plugins: [{ path: probes.p1 }],
    admin: { enabled: true, token: 'env.HEIMDALL_ADMIN_TOKEN' },
  }, { ...process.env, HEIMDALL_ADMIN_TOKEN: 'short' });
  t.equal(code, 1);
  t.match(stderr, /HEIMDALL_ERR_CONFIG/);
  t.match(stderr, /admin\.token: the admin API token \(environment variable HEIMDALL_ADMIN_TOKEN\) must be at least 32 characters/);
  t.notMatch(stdout, /worker \d+ ready/, 'no worker was started');
});
