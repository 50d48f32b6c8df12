/**
 * Host services (ABI 1.2) through a real gateway and a real C plugin (test/fixtures/host/hostsvc.c), in every
 * execution mode: log, metrics in /metrics, per-request state across PreHook, StreamChunkHook and PostHook, the
 * shared store (memory backend), misuse that must not crash, and the versioned refusal on a host without services.
 */
import koffi from 'koffi';
import t from 'tap';
import { hostPlugins } from './fixtures/host/build.js';
import { hostServices } from '../src/host/services.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { freePort, request, startPool } from './helpers/pool.js';

const MODES = ['inline', 'threaded', 'isolated'] as const;

function content(json: any): string {
  return json?.choices?.[0]?.message?.content ?? '';
}

/** One sample's value from the exposition text; undefined when it is not there. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function scrapeUntil(url: string, ready: (text: string) => boolean, ms = 5000): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    const text = await (await fetch(`${url}/metrics`)).text();
    if (ready(text) || Date.now() > until) return text;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const mode of MODES) {
  t.test(`${mode}: log, metrics, per-request state and the shared store`, async (t) => {
    const { hostsvc, concurrent } = await hostPlugins();
    const gw = await startGateway(t, {
      providers: { mock: {} },
      plugins: [{ path: mode === 'threaded' ? concurrent : hostsvc, mode }],
    });

    // 3 plain requests, 2 streamed ones.
    for (let i = 0; i < 3; i++) {
      const r = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', `plain ${i}`));
      t.equal(r.status, 200, `plain request ${i}`);
    }
    // 10 at once: a threaded plugin (declaring 16) makes its host calls from several worker threads at a time.
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', `burst ${i}`))));
    t.ok(burst.every((r) => r.status === 200), 'a burst of 10 concurrent requests is served');
    let sent = 0;
    for (let i = 0; i < 2; i++) {
      const r = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'one two three four', { stream: true }));
      t.equal(r.status, 200, `streamed request ${i}`);
      const events = sseData(r.text).filter((d) => d !== '[DONE]');
      t.ok(events.length > 2, 'chunks arrived');
      sent += events.length;
    }

    // A streamed request's PostHook runs after the client has its last chunk: wait for it (bounded).
    const metrics = await scrapeUntil(gw.url, (text) => sample(text, 'heimdall_plugin_hook_calls_total{plugin="hostsvc",hook="PostHook"}') === 15);
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_requests_total{stream="false"}'), 13, 'counter, plain');
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_requests_total{stream="true"}'), 2, 'counter, streamed');
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_prompt_bytes_count'), 15, 'histogram count');
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_prompt_bytes_bucket{le="+Inf"}'), 15, 'histogram +Inf bucket');
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_prompt_bytes_bucket{le="100"}'), 15, 'every request under 100 bytes');
    t.match(metrics, /# TYPE heimdall_plugin_hostsvc_prompt_bytes histogram/);
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_state_checks_total{result="ok"}'), 15, 'PostHook read what PreHook wrote, every time');
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_state_checks_total{result="missing"}'), undefined, 'never missing');
    t.equal(sample(metrics, 'heimdall_plugin_hostsvc_stream_chunks_total'), sent,
      'the chunk hook counted every chunk the clients got in request state, and PostHook read the count');

    t.equal(hostServices().states.liveCount, 0, 'every request\'s state was freed when it ended');

    // The log went through the gateway's logger, with the plugin's name and the request id.
    const pre = gw.logs.filter((l) => l.plugin === 'hostsvc' && /^pre \d+$/.test(l.msg));
    t.equal(pre.length, 15, 'one "pre" line per request');
    t.ok(pre.every((l) => typeof l.request_id === 'string' && l.request_id.length > 0), 'each with its request id');
    t.equal(new Set(pre.map((l) => l.request_id)).size, 15, 'a different request id each time');
    t.ok(gw.logs.some((l) => l.plugin === 'hostsvc' && l.msg === 'hostsvc init' && l.request_id === undefined), 'Init logs without a request');

    // The shared store: every call's status, as the plugin saw it.
    const kv = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', `probe:kv:${mode}`));
    t.equal(content(kv.json),
      'set=0 get=0:v1 cas_bad=3 cas_ok=0 cas_absent=3 get2=0:v2 incr=0:5,0:3 incr_text=5 small=0:2 del=0 gone=2',
      'get, set, compare-and-set, incr and delete answer as the header says');

    // Misuse: statuses, and the gateway still serves.
    const misuse = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'probe:misuse'));
    t.equal(content(misuse.json),
      'null_key=5 null_len=5 big_value=4 long_key=4 empty_key=5 bad_metric=5 bad_labels=5 neg=5 bad_name=5 redefine=5 bad_handle=5 state_big=4 incr_null=5',
      'each misuse is refused with its status');
    const cut = gw.logs.find((l) => l.plugin === 'hostsvc' && typeof l.msg === 'string' && l.msg.startsWith('xxxx'));
    t.ok(cut !== undefined && cut.msg.length < 4200 && cut.msg.endsWith('(70000 bytes in all)'), 'a long message is cut, with its length');
    t.equal(cut?.level, 50, 'an unknown level logs at error');
    t.ok(gw.logs.some((l) => l.code === 'HEIMDALL_ERR_HOST_CALL'), 'refusals are logged with their code');
    const after = await postJson(`${gw.url}/v1/chat/completions`, chat('mock/echo', 'still here'));
    t.equal(after.status, 200, 'the gateway still serves');
  });
}

t.test('a 1.2 plugin that needs host services refuses in Init, with the versioned message, on a host that never hands them over', async (t) => {
  const { hostsvc } = await hostPlugins();
  // What a 1.1 host does: version, GetName, Init; never heimdall_plugin_set_host.
  const lib = koffi.load(hostsvc);
  const version = lib.func('uint32_t heimdall_plugin_abi_version(void)')() as number;
  t.equal(version, 0x00010002, 'built for ABI 1.2');
  const out = Buffer.alloc(16);
  const status = lib.func('int32_t Init(void *config, size_t len, void *out)')(Buffer.from('{}'), 2, out) as number;
  t.equal(status, 1, 'Init refuses');
  const ptr = out.readBigUInt64LE(0);
  const len = Number(out.readBigUInt64LE(8));
  const text = koffi.decode(ptr, 'char', len) as string;
  t.match(text, /needs host services \(ABI 1\.2\).*Upgrade the gateway to one that speaks ABI 1\.2/);
});

t.test('a plugin\'s metrics from a pool of 2 workers: /metrics merges them, each sample labelled with its worker', async (t) => {
  const { hostsvc } = await hostPlugins();
  const port = await freePort();
  const pool = await startPool(t, {
    server: { port, workers: 2 },
    log: { level: 'info', requests: false },
    providers: { mock: {} },
    plugins: [{ path: hostsvc }],
  });
  for (let i = 0; i < 10; i++) {
    t.equal((await request(`${pool.url}/v1/chat/completions`, { body: chat('mock/echo', `r${i}`) })).status, 200);
  }
  const text = (await request(`${pool.url}/metrics`)).body;
  const samples = [...text.matchAll(/^heimdall_plugin_hostsvc_requests_total\{worker="([^"]+)",stream="false"\} (\d+)/gm)];
  t.equal(samples.reduce((sum, m) => sum + Number(m[2]), 0), 10, 'the workers\' counts add up to the requests');
  t.ok(samples.length === 2 && samples.every((m) => Number(m[2]) > 0), `both workers counted some (${samples.map((m) => `${m[1]}: ${m[2]}`).join(', ')})`);
  t.equal(text.match(/^# TYPE heimdall_plugin_hostsvc_requests_total counter$/gm)?.length, 1, 'one heading for the family');
});

