/**
 * Plugins that misbehave never take the gateway down. A C plugin that segfaults, aborts, loops, sleeps, leaks or
 * hands back garbage on a trigger word runs, in the mode meant for that fault, under continuous traffic. From what the
 * clients receive: no request is lost but the ones that triggered the fault, and those are answered as the policy
 * says; /health answers throughout; an isolated child comes back; the breaker opens and closes.
 */
import t, { type Test } from 'tap';
import { probePlugins } from './helpers/fixtures.js';
import { chat, postJson, startGateway, type RunningGateway } from './helpers/gateway.js';

const probes = await probePlugins();
const MISBEHAVE = probes.misbehave;

interface Traffic {
  /** Statuses of the ordinary requests, and of the triggering ones. */
  ordinary: number[];
  triggered: { status: number; code?: string }[];
  /** /health answers seen while the traffic ran (status, or 0 for no answer within 2 s). */
  health: number[];
}

/**
 * 4 clients send `ordinary` plain requests between them while, every `spacingMs`, one request carries the trigger;
 * /health is polled every 25 ms meanwhile.
 */
async function underTraffic(gw: RunningGateway, trigger: string, triggers: number, { ordinary = 300, spacingMs = 100 } = {}): Promise<Traffic> {
  const url = `${gw.url}/v1/chat/completions`;
  const out: Traffic = { ordinary: [], triggered: [], health: [] };
  let sent = 0;
  let done = false;
  const clients = Array.from({ length: 4 }, async () => {
    while (sent < ordinary) {
      sent++;
      out.ordinary.push((await postJson(url, chat('mock/echo', 'an ordinary request'))).status);
    }
  });
  const poller = (async () => {
    while (!done) {
      const res = await fetch(`${gw.url}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      out.health.push(res?.status ?? 0);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  for (let i = 0; i < triggers; i++) {
    const res = await postJson(url, chat('mock/echo', `please ${trigger}`));
    out.triggered.push({ status: res.status, code: res.json?.error?.code });
    await new Promise((r) => setTimeout(r, spacingMs));
  }
  await Promise.all(clients);
  done = true;
  await poller;
  return out;
}

function assertContained(t: Test, traffic: Traffic, triggered: { status: number; code?: string }) {
  t.equal(traffic.ordinary.filter((s) => s !== 200).length, 0, `all ${traffic.ordinary.length} ordinary requests answered 200`);
  t.ok(traffic.health.length > 0 && traffic.health.every((s) => s === 200), `/health answered all ${traffic.health.length} polls`);
  for (const r of traffic.triggered) t.match(r, triggered, 'the triggering request answered as the policy says');
}

async function status(gw: RunningGateway) {
  return gw.gateway.plugins.status().find((s) => s.name === 'misbehave');
}

async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isolated = (extra: Record<string, unknown> = {}) => ({
  path: MISBEHAVE,
  mode: 'isolated',
  timeout_ms: 1000,
  breaker: { failures: 0 },
  ...extra,
});

for (const [fault, signal] of [['segv', /SIGSEGV/], ['abort', /SIGABRT|code 134/]] as const) {
  t.test(`isolated: a plugin that ${fault === 'segv' ? 'segfaults' : 'aborts'} loses only the requests that triggered it`, async (t) => {
    const gw = await startGateway(t, { log: { level: 'info' }, providers: { mock: {} }, plugins: [isolated()] });
    const traffic = await underTraffic(gw, `trigger:${fault}`, 3, { spacingMs: 300 });
    assertContained(t, traffic, { status: 200 });
    const crashes = gw.logs.filter((l) => l.plugin === 'misbehave' && signal.test(l.msg));
    t.ok(crashes.length >= 3, `each crash is logged under the plugin's name with its cause (${crashes.length})`);
    await waitFor(async () => (await status(gw))?.runtime?.process === 'running');
    t.ok(Number((await status(gw))?.runtime?.restarts) >= 3, 'the child was restarted each time');
    // The child is back, and serving: its own output reaches the log under its name.
    await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'trigger:print'));
    await waitFor(() => gw.logs.some((l) => l.plugin === 'misbehave' && l.stream === 'stdout'));
  });
}

t.test('isolated: an infinite loop is killed at the deadline; the child comes back', async (t) => {
  const gw = await startGateway(t, { log: { level: 'info' }, providers: { mock: {} }, plugins: [isolated({ timeout_ms: 300 })] });
  const traffic = await underTraffic(gw, 'trigger:loop', 2, { ordinary: 200, spacingMs: 400 });
  assertContained(t, traffic, { status: 200 });
  t.ok(gw.logs.some((l) => l.plugin === 'misbehave' && /deadline of 300 ms/.test(l.msg)), 'the kill names the deadline');
  await waitFor(async () => (await status(gw))?.runtime?.process === 'running');
});

t.test('isolated: a leak past max_memory_mb kills only the child', async (t) => {
  const gw = await startGateway(t, { log: { level: 'info' }, providers: { mock: {} }, plugins: [isolated({ max_memory_mb: 64 })] });
  const rssBefore = process.memoryUsage().rss;
  const traffic = await underTraffic(gw, 'trigger:leak', 120, { ordinary: 200, spacingMs: 5 });
  assertContained(t, traffic, { status: 200 });
  t.ok(gw.logs.some((l) => l.plugin === 'misbehave' && /memory/.test(l.msg)), 'the kill names the memory cap');
  t.ok(process.memoryUsage().rss - rssBefore < 100 * 1024 * 1024, 'the gateway itself did not grow with the leak');
  await waitFor(async () => (await status(gw))?.runtime?.process === 'running');
});

t.test('threaded: a hook sleeping past its deadline fails; the rest of the traffic flows', async (t) => {
  const gw = await startGateway(t, {
    log: { level: 'warn' },
    providers: { mock: {} },
    plugins: [{ path: MISBEHAVE, mode: 'threaded', timeout_ms: 150, config: { sleep_ms: 600 }, breaker: { failures: 0 } }],
  });
  const traffic = await underTraffic(gw, 'trigger:sleep', 3, { ordinary: 200, spacingMs: 200 });
  assertContained(t, traffic, { status: 200 });
  t.ok(gw.logs.some((l) => l.plugin === 'misbehave' && /ran past its deadline of 150 ms/.test(l.msg)));
});

for (const mode of ['inline', 'isolated'] as const) {
  t.test(`${mode}: 50 MB of output and random bytes are failures; nothing is copied or logged whole`, async (t) => {
    const gw = await startGateway(t, {
      log: { level: 'warn' },
      providers: { mock: {} },
      plugins: [{ path: MISBEHAVE, mode, breaker: { failures: 0 } }],
    });
    const rssBefore = process.memoryUsage().rss;
    const huge = await underTraffic(gw, 'trigger:huge', 5, { ordinary: 100, spacingMs: 20 });
    assertContained(t, huge, { status: 200 });
    const garbage = await underTraffic(gw, 'trigger:garbage', 5, { ordinary: 100, spacingMs: 20 });
    assertContained(t, garbage, { status: 200 });
    const lines = gw.logs.filter((l) => l.plugin === 'misbehave');
    t.ok(lines.some((l) => /over the limit/.test(l.msg)), 'the 50 MB output is refused by size');
    t.ok(lines.some((l) => /not valid JSON/.test(l.msg)), 'the random bytes are refused as not JSON');
    t.ok(lines.every((l) => l.msg.length < 2000), 'every line about it is short');
    t.ok(process.memoryUsage().rss - rssBefore < 200 * 1024 * 1024, 'the gateway did not hold the outputs');
  });
}

t.test('on_error: fail answers the triggering request 503 naming the plugin; the breaker opens, then closes', async (t) => {
  const gw = await startGateway(t, {
    log: { level: 'info' },
    providers: { mock: {} },
    plugins: [isolated({ on_error: 'fail', breaker: { failures: 2, window_ms: 10_000, cooldown_ms: 400 } })],
  });
  const url = `${gw.url}/v1/chat/completions`;
  const first = await postJson(url, chat('mock/echo', 'trigger:segv'));
  t.equal(first.status, 503);
  t.equal(first.json.error.code, 'HEIMDALL_ERR_PLUGIN_FAILED');
  t.match(first.json.error.message, /plugin misbehave failed in PreHook/);
  await waitFor(async () => (await status(gw))?.runtime?.process === 'running');
  await postJson(url, chat('mock/echo', 'trigger:segv'));
  t.equal((await status(gw))?.quarantine?.state, 'open', 'two failures opened the breaker');
  const refused = await postJson(url, chat());
  t.equal(refused.status, 503);
  t.equal(refused.json.error.code, 'HEIMDALL_ERR_PLUGIN_QUARANTINED');
  t.equal((await (await fetch(`${gw.url}/health`)).json()).plugins[0].status, 'quarantined');
  // After the cool-down the child is back, the next request is the probe, and it succeeds.
  await new Promise((r) => setTimeout(r, 450));
  await waitFor(async () => (await status(gw))?.runtime?.process === 'running');
  t.equal((await postJson(url, chat())).status, 200, 'the probe call goes through');
  t.equal((await status(gw))?.quarantine?.state, 'closed', 'and the breaker closes');
  t.equal((await (await fetch(`${gw.url}/health`)).json()).plugins[0].status, 'active');
});
