/**
 * The koffi boundary itself: statuses and outputs cross intact, every output buffer is released through the
 * plugin's free function, and nothing accumulates per call.
 */
import t from 'tap';
import { NativeLibrary } from '../src/plugins/abi.js';
import { probePlugins } from './helpers/fixtures.js';

const probes = await probePlugins();

t.test('status and output bytes cross the boundary exactly', async (t) => {
  const lib = new NativeLibrary(probes.p3);
  const unicode = JSON.stringify({ context: { text: 'héllo 🌍 "quoted" \\ end' } });
  t.equal(lib.init(Buffer.from(JSON.stringify({ pre_output: unicode, post_status: '-7', post_output: 'boom' }))).status, 0);
  const ctx = Buffer.from('{}');
  t.same(lib.pre(ctx, Buffer.from('{"a":1}')), { status: 0, output: unicode });
  t.same(lib.post(ctx, Buffer.from('{}'), null), { status: -7, output: 'boom' });
  t.same(lib.chunk(ctx, Buffer.from('{}')), { status: 0, output: undefined }, 'no output: nothing to copy or free');
  const big = 'x'.repeat(300_000);
  lib.init(Buffer.from(JSON.stringify({ pre_output: big })));
  t.equal(lib.pre(ctx, Buffer.from('{}')).output, big, 'outputs larger than the scratch buffer');
  lib.cleanup();
  lib.unload();
});

t.test('hook calls that return output do not accumulate memory', async (t) => {
  const lib = new NativeLibrary(probes.p2);
  lib.init(Buffer.from(JSON.stringify({ pre_output: JSON.stringify({ context: { k: 'v'.repeat(200) } }) })));
  const ctx = Buffer.from('{"request_id":"x"}');
  const req = Buffer.from('{"model":"m","messages":[]}');
  const rss = () => {
    (globalThis as { gc?: () => void }).gc?.();
    return process.memoryUsage().rss;
  };
  for (let i = 0; i < 20_000; i++) lib.pre(ctx, req); // warm up
  const before = rss();
  for (let i = 0; i < 400_000; i++) lib.pre(ctx, req);
  const grown = rss() - before;
  // A per-call leak of even 50 bytes would show as 20 MB here.
  t.ok(grown < 16 * 1024 * 1024, `RSS grew ${(grown / 1024 / 1024).toFixed(1)} MiB over 400,000 calls with output`);
  lib.cleanup();
  lib.unload();
});
