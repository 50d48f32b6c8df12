/**
 * The failure policy and circuit breaker (plugins/guard.ts), around a plugin whose answers the test decides: when the
 * breaker opens, what it skips or refuses, the probe after the cool-down, and an operator's lift.
 */
import t from 'tap';
import pino from 'pino';
import { Writable } from 'node:stream';
import { GuardedPlugin, type FailurePolicy } from '../src/plugins/guard.js';
import { PluginFailure, type Maybe, type Plugin, type PreHookResult } from '../src/plugins/plugin.js';

/** A plugin whose PreHook answers what `next` says: ok, fail, or a promise of either. */
function fake() {
  const state = { next: 'ok' as 'ok' | 'fail' | 'async-ok' | 'async-fail', calls: 0 };
  const fail = () => new PluginFailure('fake', 'PreHook', 'PreHook returned status 1');
  const plugin: Plugin = {
    info: { name: 'fake', file: '/x/fake.so', abiVersion: '1.1', language: 'c', hooks: { transport: false, pre: true, post: false, chunk: false }, mode: 'inline', concurrency: 1 },
    transportInterceptor: () => ({ kind: 'continue' }),
    preHook: (): Maybe<PreHookResult> => {
      state.calls++;
      switch (state.next) {
        case 'ok':
          return { kind: 'continue', context: { seen: true } };
        case 'fail':
          throw fail();
        case 'async-ok':
          return Promise.resolve({ kind: 'continue', context: { seen: true } });
        case 'async-fail':
          return Promise.reject(fail());
      }
    },
    postHook: () => ({ kind: 'continue' }),
    streamChunk: () => ({ kind: 'continue' }),
    close: () => {},
    runtime: () => undefined,
  };
  return { plugin, state };
}

function guarded(policy: Partial<FailurePolicy> = {}) {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  const { plugin, state } = fake();
  const changes: string[] = [];
  const guard = new GuardedPlugin(
    plugin,
    { on_error: 'continue', breaker: { failures: 3, window_ms: 1000, cooldown_ms: 50 }, ...policy },
    log,
    (s) => changes.push(s),
  );
  const pre = async () => {
    try {
      const r = guard.preHook(Buffer.from('{}'), Buffer.from('{}'));
      return r instanceof Promise ? await r : r;
    } catch (err) {
      return err as PluginFailure;
    }
  };
  return { guard, state, pre, lines, changes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('N failures within the window open the breaker; its hooks are then skipped (continue)', async (t) => {
  const g = guarded();
  g.state.next = 'fail';
  for (let i = 0; i < 3; i++) t.type(await g.pre(), PluginFailure, `failure ${i + 1} is passed on`);
  t.equal(g.guard.quarantine().state, 'open');
  t.same(g.changes, ['open']);
  t.match(g.lines.find((l) => l.level === 50)?.msg, /quarantined: 3 failures within 1000 ms/);
  g.state.next = 'ok';
  const calls = g.state.calls;
  t.same(await g.pre(), { kind: 'continue' }, 'skipped: continue, without the plugin');
  t.equal(g.state.calls, calls, 'the plugin was not called');
});

t.test('failures spread wider than the window do not open it; successes in between do not reset the count', async (t) => {
  const g = guarded({ breaker: { failures: 3, window_ms: 60, cooldown_ms: 50 } });
  for (let i = 0; i < 4; i++) {
    g.state.next = 'fail';
    await g.pre();
    g.state.next = 'ok';
    await g.pre();
    await sleep(35);
  }
  t.equal(g.guard.quarantine().state, 'closed', 'never 3 failures within 60 ms');
  g.state.next = 'fail';
  await g.pre();
  await g.pre();
  t.equal(g.guard.quarantine().state, 'open', 'three within the window (one older, two now) open it');
});

t.test('after the cool-down one probe goes through: success closes, failure opens again', async (t) => {
  const g = guarded();
  g.state.next = 'fail';
  for (let i = 0; i < 3; i++) await g.pre();
  await sleep(60);
  const calls = g.state.calls;
  t.type(await g.pre(), PluginFailure, 'the probe fails');
  t.equal(g.state.calls, calls + 1, 'the probe reached the plugin');
  t.equal(g.guard.quarantine().state, 'open');
  t.equal(g.guard.quarantine().trips, 1, 'a failed probe is a new cool-down, not a new quarantine');
  await g.pre();
  t.equal(g.state.calls, calls + 1, 'then skipped again for a new cool-down');
  await sleep(60);
  g.state.next = 'async-ok';
  t.same(await g.pre(), { kind: 'continue', context: { seen: true } }, 'an asynchronous probe that succeeds');
  t.equal(g.guard.quarantine().state, 'closed');
  t.same(g.changes, ['open', 'closed']);
  t.match(g.lines.at(-1)?.msg, /answered its probe call: quarantine ended/);
});

t.test('on_error: fail marks failures with PLUGIN_FAILED and quarantine skips with PLUGIN_QUARANTINED', async (t) => {
  const g = guarded({ on_error: 'fail' });
  g.state.next = 'async-fail';
  const first = (await g.pre()) as PluginFailure;
  t.match(first.answer, { status_code: 503, code: 'HEIMDALL_ERR_PLUGIN_FAILED', allow_fallbacks: false });
  await g.pre();
  await g.pre();
  const skipped = (await g.pre()) as PluginFailure;
  t.match(skipped.answer, { status_code: 503, code: 'HEIMDALL_ERR_PLUGIN_QUARANTINED', message: /plugin fake is quarantined/ });
});

t.test('an operator lifts a quarantine; lifting a closed breaker says so', async (t) => {
  const g = guarded({ breaker: { failures: 1, window_ms: 1000, cooldown_ms: 60_000 } });
  g.state.next = 'fail';
  await g.pre();
  t.equal(g.guard.quarantine().state, 'open');
  t.equal(g.guard.lift(), true);
  t.equal(g.guard.quarantine().state, 'closed');
  t.equal(g.guard.lift(), false);
  g.state.next = 'ok';
  const calls = g.state.calls;
  await g.pre();
  t.equal(g.state.calls, calls + 1, 'called again at once');
});

t.test('failures: 0 turns the breaker off', async (t) => {
  const g = guarded({ breaker: { failures: 0, window_ms: 1000, cooldown_ms: 50 } });
  g.state.next = 'fail';
  for (let i = 0; i < 50; i++) await g.pre();
  t.equal(g.guard.quarantine().state, 'closed');
  t.equal(g.state.calls, 50);
});

t.test('only the probe closes the breaker: a call made before it opened, answering late, does not', async (t) => {
  const g = guarded({ breaker: { failures: 1, window_ms: 1000, cooldown_ms: 60_000 } });
  g.state.next = 'async-ok';
  const late = g.pre(); // under way while the breaker opens
  g.state.next = 'fail';
  await g.pre();
  t.equal(g.guard.quarantine().state, 'open');
  await late;
  t.equal(g.guard.quarantine().state, 'open', 'still quarantined');
});
