/**
 * What an upstream may not do to the gateway, over real sockets: send an answer too large or endless
 * (max_response_bytes), a stream line or event too large (max_event_bytes), JSON nested too deep, or an error
 * message that echoes the gateway's credential. The gateway runs in this process, so its memory is measured as the
 * process's RSS, sampled while each hostile answer is read.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import t from 'tap';
import { Errors } from '../src/errors.js';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../src/json-depth.js';
import { redactor } from '../src/providers/http/redact.js';
import { EventTooLarge, sseEvents } from '../src/providers/http/sse.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';

const KEY = 'heimdall-limits-key-7f3a9c2e51';
process.env.HEIMDALL_TEST_LIMITS_KEY = KEY;
t.teardown(() => {
  delete process.env.HEIMDALL_TEST_LIMITS_KEY;
});

const MiB = 1024 * 1024;
const PIECE = Buffer.alloc(64 * 1024, 'x'); // one reused buffer: the upstream itself allocates nothing per write
const OK = { id: 'chatcmpl-ok', object: 'chat.completion', created: 1, model: 'ok', choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }] };
const chunk = (content: string) =>
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;

interface Served {
  model: string;
  /** Body bytes the upstream managed to hand to its socket before the gateway hung up (or it finished). */
  sent: number;
  /** The gateway closed the connection before the answer was complete. */
  cut: boolean;
  /** The connection is closed, by either side. */
  closed: boolean;
}

type Behaviour = (res: http.ServerResponse, served: Served, body: any) => void;

/**
 * Writes `total` bytes (Infinity: forever) as fast as the socket takes them, stopping when the peer hangs up; then
 * ends the answer, or with `end` false keeps it open.
 */
function pour(res: http.ServerResponse, served: Served, total: number, end = true): void {
  const next = () => {
    while (!res.destroyed && served.sent < total) {
      const piece = total - served.sent < PIECE.length ? PIECE.subarray(0, total - served.sent) : PIECE;
      served.sent += piece.length;
      if (!res.write(piece)) return void res.once('drain', next);
    }
    if (!res.destroyed && end) res.end();
  };
  next();
}

const BEHAVIOURS: Record<string, Behaviour> = {
  ok: (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(OK)),
  // 900 KiB of JSON: under the 1 MiB cap, so it must pass.
  'just-under': (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...OK, choices: [{ ...OK.choices[0], message: { role: 'assistant', content: 'y'.repeat(900 * 1024) } }] }));
  },
  'huge-100mb': (res, served) => {
    res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no content-length to refuse it by
    pour(res, served, 100 * MiB);
  },
  endless: (res, served) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    pour(res, served, Infinity);
  },
  // Announces 100 MB, then sends nothing: only the content-length can end this quickly.
  'announced-100mb': (res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(100 * MiB) });
    res.flushHeaders();
  },
  // A 500 whose body never ends: an error answer is capped too.
  'endless-500': (res, served) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    pour(res, served, Infinity);
  },
  'deep-200k': (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"id":"deep","object":"chat.completion","choices":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
  },
  'echo-key': (res, _served, body) => {
    const message = `Incorrect API key provided: Bearer ${KEY}. Also tried ${KEY}, sk-proj-AbCdEfGhIjKlMnOpQrStUvWx and Authorization: Bearer abc.def-ghi`;
    if (body.stream === true && body.messages?.[0]?.content === 'mid-stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk('hello'));
      res.end(`data: ${JSON.stringify({ error: { message, type: 'invalid_request_error' } })}\n\n`);
      return;
    }
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }));
  },
};

/** Answers to "stream": true, after a 200 with text/event-stream: maybe a good chunk, then something hostile. */
const STREAMS: Record<string, Behaviour> = {
  // One chunk, then a 5 MB line without a newline, then silence with the connection open.
  'line-5mb-after-chunk': (res, served) => {
    res.write(chunk('hello'));
    res.write('data: ');
    pour(res, served, 5 * MiB, false);
  },
  'line-5mb-first': (res, served) => {
    res.write('data: ');
    pour(res, served, 5 * MiB, false);
  },
  // Lines of 1 KiB, each under the limit, that never end their event.
  'event-2mb-after-chunk': (res, served) => {
    res.write(chunk('hello'));
    const line = `data: ${'z'.repeat(1018)}\n`;
    const next = () => {
      while (!res.destroyed && served.sent < 2 * MiB) {
        served.sent += line.length;
        if (!res.write(line)) return void res.once('drain', next);
      }
    };
    next();
  },
  'deep-first': (res) => {
    res.write(`data: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n\n`);
  },
};

async function startHostileUpstream(tt: { teardown(fn: () => unknown): void }) {
  const served: Served[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8') || '{}');
      const entry: Served = { model: body.model ?? '', sent: 0, cut: false, closed: false };
      served.push(entry);
      res.on('close', () => {
        entry.closed = true;
        if (!res.writableFinished) entry.cut = true;
      });
      const stream = STREAMS[entry.model];
      if (body.stream === true && stream !== undefined) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return stream(res, entry, body);
      }
      const behaviour = BEHAVIOURS[entry.model] ?? BEHAVIOURS.ok;
      (behaviour as Behaviour)(res, entry, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, served };
}

const up = await startHostileUpstream(t);
const gw = await startGateway(t, {
  log: { level: 'warn' },
  providers: {
    up: {
      type: 'openai',
      base_url: up.baseUrl,
      api_key: 'env.HEIMDALL_TEST_LIMITS_KEY',
      max_response_bytes: MiB,
      max_event_bytes: MiB,
      timeout_ms: 15_000,
      // Were anything here retried, the upstream would see it.
      retries: { max_retries: 2, initial_backoff_ms: 10, max_backoff_ms: 20 },
    },
  },
});
const url = `${gw.url}/v1/chat/completions`;

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Runs `fn` while sampling RSS every 5 ms; resolves to its result, the peak growth over the RSS before (after a
 * GC, when the test runs with --expose-gc), and how long it took.
 */
async function measured<T>(fn: () => Promise<T>): Promise<{ result: T; grewMB: number; ms: number }> {
  gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const started = performance.now();
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, grewMB: (peak - before) / MiB, ms: performance.now() - started };
  } finally {
    clearInterval(sampler);
  }
}

/** The upstream's last answer for `model`, once its connection is closed (or after 5 s, as it is then). */
async function settled(model: string): Promise<Served | undefined> {
  const until = Date.now() + 5000;
  for (;;) {
    const entry = up.served.findLast((s) => s.model === model);
    if ((entry !== undefined && entry.closed) || Date.now() > until) return entry;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const servedFor = (model: string) => up.served.filter((s) => s.model === model).length;

t.test('whole answers: max_response_bytes', async (t) => {
  await t.test('an answer under the cap passes', async (t) => {
    const res = await postJson(url, chat('up/just-under'));
    t.equal(res.status, 200);
    t.equal(res.json.choices[0].message.content.length, 900 * 1024);
  });

  await t.test('a 100 MB answer: refused past 1 MiB, without holding it', async (t) => {
    const { result: res, grewMB, ms } = await measured(() => postJson(url, chat('up/huge-100mb')));
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TOO_LARGE');
    t.match(res.json.error.message, /provider up sent an answer larger than 1048576 bytes \(max_response_bytes\)/);
    t.ok(ms < 3000, `answered in ${ms.toFixed(0)} ms`);
    t.ok(grewMB < 50, `RSS grew by ${grewMB.toFixed(1)} MB`);
    const served = await settled('huge-100mb');
    t.ok(served?.cut, 'the gateway hung up on the upstream');
    t.ok((served?.sent ?? 0) < 40 * MiB, `the upstream got ${((served?.sent ?? 0) / MiB).toFixed(1)} MB of 100 MB out`);
    t.equal(servedFor('huge-100mb'), 1, 'not retried');
  });

  await t.test('an endless answer: the same, well within timeout_ms', async (t) => {
    const { result: res, grewMB, ms } = await measured(() => postJson(url, chat('up/endless')));
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TOO_LARGE');
    t.ok(ms < 3000, `answered in ${ms.toFixed(0)} ms`);
    t.ok(grewMB < 50, `RSS grew by ${grewMB.toFixed(1)} MB`);
    t.ok((await settled('endless'))?.cut, 'the gateway hung up on the upstream');
    t.equal(servedFor('endless'), 1, 'not retried');
  });

  await t.test('a content-length over the cap is refused before any body is read', async (t) => {
    const started = performance.now();
    const res = await postJson(url, chat('up/announced-100mb'));
    const ms = performance.now() - started;
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TOO_LARGE');
    t.ok(ms < 1000, `answered in ${ms.toFixed(0)} ms, without waiting for a body that never comes`);
    t.ok((await settled('announced-100mb'))?.cut, 'the gateway hung up on the upstream');
    t.equal(servedFor('announced-100mb'), 1, 'not retried');
  });

  await t.test('an error answer is capped too', async (t) => {
    const { result: res, grewMB } = await measured(() => postJson(url, chat('up/endless-500')));
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TOO_LARGE');
    t.ok(grewMB < 50, `RSS grew by ${grewMB.toFixed(1)} MB`);
  });

  await t.test('the same, on a stream request that the upstream answers with an endless 500', async (t) => {
    const res = await postJson(url, chat('up/endless-500', 'hi', { stream: true }));
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_TOO_LARGE');
  });
});

t.test('streams: max_event_bytes', async (t) => {
  await t.test('a 5 MB line without a newline, after the first chunk: the stream ends with the error event', async (t) => {
    const { result: res, grewMB, ms } = await measured(() => postJson(url, chat('up/line-5mb-after-chunk', 'hi', { stream: true })));
    t.equal(res.status, 200);
    const data = sseData(res.text);
    t.equal(JSON.parse(data[0] as string).choices[0].delta.content, 'hello', 'the chunk before it was delivered');
    const last = JSON.parse(data.at(-1) as string);
    t.equal(last.error.code, 'HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE');
    t.match(last.error.message, /larger than 1048576 bytes \(max_event_bytes\)/);
    t.notOk(data.includes('[DONE]'));
    t.ok(ms < 3000, `ended in ${ms.toFixed(0)} ms`);
    t.ok(grewMB < 50, `RSS grew by ${grewMB.toFixed(1)} MB`);
    const served = await settled('line-5mb-after-chunk');
    t.ok(served?.cut, 'the gateway hung up on the upstream');
  });

  await t.test('the same line before any chunk: it is the answer', async (t) => {
    const res = await postJson(url, chat('up/line-5mb-first', 'hi', { stream: true }));
    t.equal(res.status, 502);
    t.equal(res.json.error.code, 'HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE');
  });

  await t.test('an event of short lines that never ends', async (t) => {
    const res = await postJson(url, chat('up/event-2mb-after-chunk', 'hi', { stream: true }));
    t.equal(res.status, 200);
    t.equal(JSON.parse(sseData(res.text).at(-1) as string).error.code, 'HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE');
  });
});

t.test("an upstream's error message that echoes the credential reaches the client redacted", async (t) => {
  const leaks = (text: string) => [KEY, 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWx', 'abc.def-ghi'].filter((s) => text.includes(s));

  const res = await postJson(url, chat('up/echo-key'));
  t.equal(res.status, 401, 'the upstream\'s status');
  t.equal(res.json.error.code, 'invalid_api_key', 'the upstream\'s code');
  t.equal(res.json.error.heimdall_code, 'HEIMDALL_ERR_UPSTREAM_REJECTED');
  t.match(res.json.error.message, /^provider up refused the request \(401\): Incorrect API key provided: Bearer \[redacted\]\. Also tried \[redacted\]/);
  t.same(leaks(res.text), [], 'neither the key, nor a bearer token, nor an sk- key');

  const streamed = await postJson(url, chat('up/echo-key', 'hi', { stream: true }));
  t.equal(streamed.status, 401, 'a 401 to a stream request');
  t.match(streamed.json.error.message, /refused the request \(401\): .*\[redacted\]/);
  t.same(leaks(streamed.text), []);

  const midStream = await postJson(url, chat('up/echo-key', 'mid-stream', { stream: true }));
  t.equal(midStream.status, 200);
  const last = JSON.parse(sseData(midStream.text).at(-1) as string);
  t.equal(last.error.code, 'HEIMDALL_ERR_UPSTREAM_STATUS', 'an error event in the stream');
  t.match(last.error.message, /\[redacted\]/);
  t.same(leaks(midStream.text), []);
});

t.test('JSON nested 200,000 levels deep is refused as such, not with a stack overflow', async (t) => {
  const res = await postJson(url, chat('up/deep-200k'));
  t.equal(res.status, 502);
  t.equal(res.json.error.code, 'HEIMDALL_ERR_JSON_TOO_DEEP');
  t.equal(res.json.error.message, `provider up sent JSON nested deeper than ${MAX_JSON_DEPTH} levels; it was refused`);

  const streamed = await postJson(url, chat('up/deep-first', 'hi', { stream: true }));
  t.equal(streamed.status, 502);
  t.equal(streamed.json.error.code, 'HEIMDALL_ERR_JSON_TOO_DEEP');

  t.equal((await postJson(url, chat('up/ok'))).status, 200, 'and the gateway goes on serving');
});

t.test('sseEvents: lines and events measured across chunks, whatever ends the lines', async (t) => {
  const read = async (pieces: string[], limit: number) => {
    const data: string[] = [];
    const toError = (err: unknown) => (err instanceof EventTooLarge ? Errors.UPSTREAM_EVENT_TOO_LARGE('p', err.limit) : Errors.INTERNAL(String(err)));
    try {
      for await (const e of sseEvents(Readable.from(pieces.map((p) => Buffer.from(p))), toError, limit)) data.push(e.data);
    } catch (err) {
      data.push((err as { code: string }).code);
    }
    return data;
  };
  const line = 'data: 0123456789'; // 16 bytes
  t.same(await read([`${line}\r`, '\n', '\r\n', `${line}\r\r`, `${line}\n\n`], 20), ['0123456789', '0123456789', '0123456789'], 'CRLF, CR and LF; a CRLF split across chunks');
  t.same(await read([`${line}\n`, `${line}\n`], 20), ['HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE'], 'two lines of one event, each chunk ending with its line');
  t.same(await read([`${line}\r`, `${line}\r`, '\r'], 20), ['HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE'], 'the same with CR line ends');
  t.same(await read([`${line}0123\n\n`], 20), ['01234567890123'], 'a line of exactly the limit');
  t.same(await read([`${line}01234\n\n`], 20), ['HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE'], 'one byte over it');
  t.same(await read([line, '01234'], 20), ['HEIMDALL_ERR_UPSTREAM_EVENT_TOO_LARGE'], 'a line without an end');
});

t.test('jsonDepthExceeds: brackets count outside strings only, escapes included', async (t) => {
  t.equal(jsonDepthExceeds('[[[]]]', 3), false);
  t.equal(jsonDepthExceeds('[[[[]]]]', 3), true);
  t.equal(jsonDepthExceeds('{"a":{"b":{"c":{}}}}', 3), true);
  t.equal(jsonDepthExceeds('["[[[[[[", {"k]]]": "{{{{"}]', 3), false, 'brackets inside strings');
  t.equal(jsonDepthExceeds('["a\\"[[[[[[", 1]', 3), false, 'an escaped quote does not end the string');
  t.equal(jsonDepthExceeds('["a\\\\", [[[1]]]]', 3), true, 'an escaped backslash does');
  t.equal(jsonDepthExceeds(Buffer.from('["é[[[[", [[[1]]]]'), 3), true, 'UTF-8 bytes');
  t.equal(jsonDepthExceeds(Buffer.from('["é[[[[", [[1]]]'), 3), false);
  t.equal(jsonDepthExceeds('['.repeat(257) + ']'.repeat(257)), true, `the default limit is ${MAX_JSON_DEPTH}`);
  t.equal(jsonDepthExceeds('['.repeat(256) + ']'.repeat(256)), false);
});

t.test('redactor: the given secrets, bearer tokens and API-key shapes', async (t) => {
  const redact = redactor(['s3cret-one', '', 's3cret-one-longer']);
  t.equal(redact('got s3cret-one-longer and s3cret-one'), 'got [redacted] and [redacted]');
  t.equal(redact('authorization: Bearer eyJhbGciOi.J9.x-y_z=='), 'authorization: Bearer [redacted]');
  t.equal(redact('key sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA end'), 'key [redacted] end');
  t.equal(redact('key gsk_AAAAAAAAAAAAAAAAAAAAAAAA end'), 'key [redacted] end');
  t.equal(redact('a task-oriented model-name-of-some-length, sk-short'), 'a task-oriented model-name-of-some-length, sk-short', 'ordinary text is left alone');
});
