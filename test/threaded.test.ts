/**
 * The threaded mode's scheduling (plugins/modes/threaded.ts, threads.ts), with libraries whose calls the test
 * finishes when it wants: the shared thread budget, per-plugin concurrency, queue bounds and deadlines.
 */
import t from 'tap';
import pino from 'pino';
import type { CallResult, NativeLibrary } from '../src/plugins/abi.js';
import { ThreadedCaller } from '../src/plugins/modes/threaded.js';
import { ThreadBudget } from '../src/plugins/modes/threads.js';
import { PluginFailure } from '../src/plugins/plugin.js';

/**
 * A library whose PreHook calls take `ms` each (on a timer, as a worker thread would), counting those running; with
 * a list, the n-th call takes the n-th duration.
 */
function slowLibrary(ms: number | number[]) {
  const state = { running: 0, max: 0, cleaned: false, calls: 0 };
  const lib = {
    preAsync(_ctx: Buffer, _req: Buffer, done: (r: CallResult | Error) => void) {
      const duration = Array.isArray(ms) ? (ms[state.calls] as number) : ms;
      state.calls++;
      state.running++;
      state.max = Math.max(state.max, state.running);
      setTimeout(() => {
        state.running--;
        done({ status: 0, output: undefined });
      }, duration);
    },
    cleanup() {
      state.cleaned = true;
    },
    unload() {},
  } as unknown as NativeLibrary;
  return { lib, state };
}

const log = pino({ level: 'silent' });
const options = (name: string, concurrency: number, timeoutMs: number, maxQueue = 100) => ({
  name, concurrency, timeoutMs, maxQueue, closeTimeoutMs: 1000, unloadable: false, log,
});
const call = (caller: ThreadedCaller) => caller.pre(Buffer.from('{}'), Buffer.from('{}')).then(
  () => 'ok',
  (err: PluginFailure) => err.message,
);

t.test('a freed thread goes to a plugin still waiting, past one whose calls expired meanwhile', async (t) => {
  const budget = new ThreadBudget(2);
  // x holds both threads; it gives one back at 100 ms and keeps the other for 1.5 s.
  const x = new ThreadedCaller(slowLibrary([100, 1500]).lib, budget, options('x', 2, 5000));
  const b = new ThreadedCaller(slowLibrary(10).lib, budget, options('b', 1, 50));
  const c = new ThreadedCaller(slowLibrary(10).lib, budget, options('c', 1, 1000));
  const xs = [call(x), call(x)]; // both threads, for 100 ms
  const bDone = call(b); // waits, and expires at 50 ms
  const started = performance.now();
  const cDone = call(c); // waits; a thread is free at 100 ms
  t.match(await bDone, /waited 50 ms for a free slot/);
  t.equal(await cDone, 'ok', 'c ran once x gave a thread back');
  t.ok(performance.now() - started < 500, 'and did not wait for its own deadline');
  await Promise.all(xs);
  t.same(budget.stats, { size: 2, used: 0 }, 'every thread is back');
});

t.test('calls run as many at once as the plugin allows, within the budget; the rest wait in a bounded queue', async (t) => {
  const budget = new ThreadBudget(8);
  const lib = slowLibrary(30);
  const caller = new ThreadedCaller(lib.lib, budget, options('p', 3, 2000, 5));
  const results = await Promise.all(Array.from({ length: 9 }, () => call(caller)));
  t.equal(lib.state.max, 3, 'never more than 3 at once');
  t.equal(results.filter((r) => r === 'ok').length, 8, '3 running + 5 queued');
  t.match(results.filter((r) => r !== 'ok'), [/5 calls already wait for this plugin \(max_queue\)/]);
  t.same(budget.stats, { size: 8, used: 0 });
});

t.test('a call past its deadline fails at once, but its thread is held until the call returns', async (t) => {
  const budget = new ThreadBudget(1);
  const slow = new ThreadedCaller(slowLibrary(200).lib, budget, options('slow', 1, 50));
  const started = performance.now();
  t.match(await call(slow), /ran past its deadline of 50 ms/);
  t.ok(performance.now() - started < 150, 'failed at the deadline, not when the call returned');
  t.equal(budget.stats.used, 1, 'the thread is still busy');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(budget.stats.used, 0, 'and free once the call returned');
});

t.test('close waits for running calls before Cleanup, and fails what still waits', async (t) => {
  const budget = new ThreadBudget(4);
  const lib = slowLibrary(80);
  const caller = new ThreadedCaller(lib.lib, budget, options('p', 1, 2000));
  const first = call(caller);
  const queued = call(caller);
  await new Promise((r) => setTimeout(r, 10));
  const closed = caller.close();
  t.notOk(lib.state.cleaned, 'no Cleanup while a hook runs');
  t.match(await queued, /not run: the plugin is being unloaded/);
  t.equal(await first, 'ok');
  await closed;
  t.ok(lib.state.cleaned, 'Cleanup once the call returned');
});
