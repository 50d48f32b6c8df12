/**
 * The isolated mode's transport: a real plugin host process (build/Release/heimdall-plugin-host, built by npm
 * install) running the misbehave test plugin, which crashes, hangs, leaks and shouts on demand. Whatever it does, the
 * gateway's side fails the calls concerned with a message that names the cause, and starts a new child.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { HeimdallError } from '../src/errors.js';
import type { CallResult } from '../src/plugins/abi.js';
import { DEFAULT_HOST_BINARY, HostProcess, type HostInfo, type HostProcessOptions } from '../src/plugins/isolated/host-process.js';
import {
  FLAG_HOST,
  FLAG_OUTPUT,
  HostStatus,
  Op,
  ProtocolError,
  ResponseReader,
  encodeRequest,
  encodeRequestHeader,
  outputOf,
  type Response,
} from '../src/plugins/isolated/protocol.js';
import { PluginFailure } from '../src/plugins/plugin.js';
import { probePlugins } from './helpers/fixtures.js';

const probes = await probePlugins();
const CTX = Buffer.from('{"request_id":"r1","values":{}}');

if (!existsSync(DEFAULT_HOST_BINARY)) throw new Error(`${DEFAULT_HOST_BINARY} is missing: run npm install (or npx node-gyp rebuild)`);

interface LogLine {
  level: number;
  msg: string;
  plugin?: string;
  stream?: string;
  code?: number | null;
  signal?: string | null;
  hook?: string | null;
  reason?: string;
}

function memoryLog(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines };
}

const RESTART = { initialDelayMs: 20, maxDelayMs: 200, maxRestarts: 5, windowMs: 30_000 };

async function startHost(
  t: Test,
  options: Partial<HostProcessOptions> = {},
  check: (info: HostInfo) => void = () => {},
): Promise<{ host: HostProcess; lines: LogLine[] }> {
  const { log, lines } = memoryLog();
  const host = await HostProcess.start(
    {
      file: probes.misbehave,
      label: 'misbehave.so',
      log,
      config: Buffer.from('{}'),
      timeoutMs: 2000,
      maxMemoryMb: 512,
      maxOutputBytes: 1024 * 1024,
      maxInputBytes: 16 * 1024 * 1024,
      maxQueue: 16,
      restart: RESTART,
      ...options,
    },
    check,
  );
  t.teardown(() => host.close());
  return { host, lines };
}

function pre(host: HostProcess, request: string): Promise<CallResult> {
  return host.call('pre', [CTX, Buffer.from(request)]);
}

async function failure(promise: Promise<unknown>): Promise<PluginFailure> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof PluginFailure) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function refusal(options: Partial<HostProcessOptions>, check?: (info: HostInfo) => void): Promise<HeimdallError> {
  try {
    const { host } = await startHost(t, options, check);
    await host.close();
  } catch (err) {
    if (err instanceof HeimdallError) return err;
    throw err;
  }
  throw new Error('expected start() to be refused');
}

t.test('start-up says what the plugin is; a plain call continues', async (t) => {
  const seen: HostInfo[] = [];
  const { host } = await startHost(t, {}, (info) => void seen.push(info));
  t.equal(seen.length, 1, 'check ran once, before Init');
  t.equal(host.info.name, 'misbehave');
  t.equal(host.info.abiVersion, 0x00010001);
  t.equal(host.info.concurrency, 1);
  t.same([...host.info.exports].sort(), [
    'Cleanup', 'GetName', 'Init', 'PostHook', 'PreHook', 'StreamChunkHook', 'heimdall_plugin_abi_version', 'heimdall_plugin_free',
  ]);
  t.equal(host.state(), 'running');
  t.same(await pre(host, '{"model":"a/b","messages":[]}'), { status: 0, output: undefined });
  t.same(await host.call('post', [CTX, null, null]), { status: 0, output: undefined });
  t.same(await host.call('chunk', [CTX, Buffer.from('{}')]), { status: 0, output: undefined });
  t.same(host.stats(), { restarts: 0 });
});

t.test("a hook's output and status come back as the plugin gave them", async (t) => {
  const { host } = await startHost(t);
  t.same(await pre(host, 'trigger:fail'), { status: 1, output: 'misbehave: asked to fail' });
  const garbage = await pre(host, 'trigger:garbage');
  t.equal(garbage.status, 0);
  t.type(garbage.output, 'string', 'bytes that are not UTF-8 still arrive, for the decoder to refuse');
  t.throws(() => JSON.parse(garbage.output!));
  // Calls in a row, queued behind each other, each get their own answer.
  const answers = await Promise.all([pre(host, 'trigger:fail'), pre(host, 'x'), pre(host, 'trigger:fail')]);
  t.same(answers.map((a) => a.status), [1, 0, 1]);
});

t.test('large inputs arrive whole; inputs over max_input_bytes are refused without a call', async (t) => {
  const { host } = await startHost(t, { maxInputBytes: 1024 * 1024 });
  // Over the size that is written after the header as is rather than copied: the trigger is at the very end.
  const large = `${'x'.repeat(300_000)}trigger:fail`;
  t.same(await pre(host, large), { status: 1, output: 'misbehave: asked to fail' });
  const tooLarge = await failure(pre(host, 'x'.repeat(1024 * 1024)));
  t.match(tooLarge.message, /^PreHook not called: its input of \d+ bytes is over the plugin host's limit of 1048576/);
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
  t.equal(host.stats().restarts, 0);
});

t.test('a segfault fails the call naming SIGSEGV; the child is restarted and serves again', async (t) => {
  const { host, lines } = await startHost(t);
  const err = await failure(pre(host, 'trigger:segv'));
  t.equal(err.plugin, 'misbehave');
  t.equal(err.hook, 'PreHook');
  t.equal(err.message, 'plugin host exited on signal SIGSEGV while running PreHook');
  t.equal(host.state(), 'restarting');
  const meanwhile = await failure(pre(host, 'x'));
  t.match(meanwhile.message, /^plugin host is restarting after it exited on signal SIGSEGV/);

  await until(() => host.state() === 'running');
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
  const { restarts, lastExit } = host.stats();
  t.equal(restarts, 1);
  t.match(lastExit, { code: null, signal: 'SIGSEGV', reason: 'signal' });
  const logged = lines.filter((l) => l.level === 50);
  t.equal(logged.length, 1, 'one error line per exit');
  t.match(logged[0], { plugin: 'misbehave', signal: 'SIGSEGV', code: null, hook: 'PreHook' });
});

t.test('abort() is reported as SIGABRT', async (t) => {
  const { host } = await startHost(t);
  const err = await failure(pre(host, 'trigger:abort'));
  t.equal(err.message, 'plugin host exited on signal SIGABRT while running PreHook');
  await until(() => host.state() === 'running');
  t.equal(host.stats().lastExit?.signal, 'SIGABRT');
});

t.test('a runaway hook is killed at its deadline; the calls queued behind it fail too', { timeout: 10_000 }, async (t) => {
  const { host, lines } = await startHost(t, { timeoutMs: 300 });
  const started = Date.now();
  const [looping, queued] = await Promise.all([failure(pre(host, 'trigger:loop')), failure(pre(host, 'x'))]);
  const took = Date.now() - started;
  t.equal(looping.message, 'plugin host was killed: PreHook ran past its deadline of 300 ms');
  t.ok(took >= 290 && took < 1500, `failed at the deadline (${took} ms)`);
  t.match(queued.message, /deadline of 300 ms/);
  await until(() => host.state() === 'running');
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
  t.match(host.stats().lastExit, { signal: 'SIGKILL', reason: 'deadline' });
  t.match(lines.find((l) => l.level === 50), { hook: 'PreHook', reason: 'deadline' });
});

t.test('a call that waits past its deadline in the queue is never sent', async (t) => {
  const { host } = await startHost(t, { timeoutMs: 400, config: Buffer.from('{"sleep_ms":300}') });
  const sleeping = pre(host, 'trigger:sleep');
  await new Promise((resolve) => setTimeout(resolve, 150));
  // Asked for 150 ms into the first call's 300: it gets its turn at ~300 ms, within its deadline (550 ms).
  const second = pre(host, 'x');
  t.same(await sleeping, { status: 0, output: undefined });
  t.same(await second, { status: 0, output: undefined });
  t.equal(host.stats().restarts, 0);
});

t.test('a leak is killed past max_memory_mb, within a bounded number of calls', { timeout: 20_000 }, async (t) => {
  const { host } = await startHost(t, { maxMemoryMb: 64 });
  let calls = 0;
  let err: PluginFailure | undefined;
  while (calls < 400 && err === undefined) {
    calls += 1;
    err = await pre(host, 'trigger:leak').then(
      () => undefined,
      (e: PluginFailure) => e,
    );
    await new Promise((resolve) => setTimeout(resolve, 2)); // about 50 MB between two looks at its memory
  }
  t.ok(err, `killed after ${calls} calls of 1 MiB`);
  t.match(err?.message, /^plugin host was killed: memory over max_memory_mb \(64 MB\)/);
  t.ok(calls > 40, 'not before it got there');
  t.match(host.stats().lastExit, { signal: 'SIGKILL', reason: 'memory' });
  await until(() => host.state() === 'running');
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
});

t.test('output over max_output_bytes is refused in the child, which lives on', async (t) => {
  const { host } = await startHost(t, { maxOutputBytes: 1024 * 1024 });
  const huge = await pre(host, 'trigger:huge');
  t.equal(huge.output, undefined);
  t.equal(huge.status, HostStatus.OUTPUT_TOO_LARGE);
  t.equal(huge.refused, 'output of 50000000 bytes is over the limit of 1048576 bytes (max_output_bytes)');
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
  t.equal(host.stats().restarts, 0);
  t.equal(host.state(), 'running');
});

t.test("the child's stdout and stderr are logged line by line under the plugin's name", async (t) => {
  const { host, lines } = await startHost(t);
  await pre(host, 'trigger:print');
  await until(() => lines.some((l) => l.stream === 'stderr') && lines.some((l) => l.stream === 'stdout'));
  t.match(lines.find((l) => l.stream === 'stdout'), { level: 30, plugin: 'misbehave', msg: 'misbehave: to stdout' });
  t.match(lines.find((l) => l.stream === 'stderr'), { level: 40, plugin: 'misbehave', msg: 'misbehave: to stderr' });
});

t.test('a crash loop stops the restarts: every call then fails at once', async (t) => {
  const { host, lines } = await startHost(t, { restart: { initialDelayMs: 10, maxDelayMs: 40, maxRestarts: 2, windowMs: 10_000 } });
  for (let i = 0; i < 3; i++) {
    await until(() => host.state() === 'running');
    await failure(pre(host, 'trigger:segv'));
  }
  t.equal(host.state(), 'failed');
  t.equal(host.stats().restarts, 2);
  const err = await failure(pre(host, 'x'));
  t.match(err.message, /^plugin host failed: it stopped 3 times within 10000 ms .* not restarted/);
  const errors = lines.filter((l) => l.level === 50);
  t.equal(errors.length, 3, 'one line per exit');
  t.match(errors[2]!.msg, /not restarted/);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(host.state(), 'failed', 'and it stays so');
});

t.test('the queue is bounded: the call past max_queue fails at once', async (t) => {
  const { host } = await startHost(t, { maxQueue: 2, config: Buffer.from('{"sleep_ms":300}') });
  const inFlight = pre(host, 'trigger:sleep');
  const queued = [pre(host, 'x'), pre(host, 'x')];
  const started = Date.now();
  const refused = await failure(pre(host, 'x'));
  t.ok(Date.now() - started < 100, 'at once');
  t.match(refused.message, /PreHook not called: 2 calls are already waiting for the plugin host \(max_queue\)/);
  t.same(await Promise.all([inFlight, ...queued]), Array(3).fill({ status: 0, output: undefined }));
});

t.test('a failing Init refuses the start, with its message', async (t) => {
  const err = await refusal({ config: Buffer.from('{"init_fail":true}') });
  t.equal(err.code, 'HEIMDALL_ERR_PLUGIN_INIT');
  t.match(err.message, 'plugin misbehave (misbehave.so) refused to start: Init failed: misbehave: init refused');
});

t.test('start-up refusals are catalogued errors that name the file', async (t) => {
  const missingHost = await refusal({ hostBinary: path.join(tmpdir(), 'no-such-heimdall-plugin-host') });
  t.equal(missingHost.code, 'HEIMDALL_ERR_PLUGIN_HOST');
  t.match(missingHost.message, /plugin misbehave\.so: its isolated plugin host .* did not start: plugin host could not be started/);

  const symbols = await refusal({ file: probes.nocleanup });
  t.equal(symbols.code, 'HEIMDALL_ERR_PLUGIN_SYMBOL');
  t.match(symbols.message, /GetName, Cleanup/);

  const text = path.join(t.testdir(), 'not-a-library.so');
  writeFileSync(text, 'hello\n');
  const open = await refusal({ file: text });
  t.equal(open.code, 'HEIMDALL_ERR_PLUGIN_OPEN');

  const refusedByCheck = await refusal({}, () => {
    throw new HeimdallError('HEIMDALL_ERR_TEST', 500, 'plugin_error', 'refused by the check');
  });
  t.equal(refusedByCheck.message, 'refused by the check');
});

t.test('a child that breaks the protocol is killed, and the error says how', async (t) => {
  // Stand-ins for the host binary: shell scripts that misbehave on the channel (fd 3).
  const fake = (name: string, script: string): string => {
    const file = path.join(t.testdir(), name);
    writeFileSync(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    return file;
  };
  const oversized = await refusal({ hostBinary: fake('oversized', "printf '\\377\\377\\377\\177' >&3; exec sleep 10") });
  t.equal(oversized.code, 'HEIMDALL_ERR_PLUGIN_HOST');
  t.match(oversized.message, /plugin host was killed: it sent a response of 2147483647 bytes, over the limit of 1048640/);
  const hangUp = await refusal({ hostBinary: fake('hang-up', 'exec 3>&-; exec sleep 10') });
  t.match(hangUp.message, /plugin host was killed: it closed its channel to the gateway/);
});

t.test('a long line of output is logged in pieces of 4096 bytes; a child that dies at start-up names its exit', async (t) => {
  const { log, lines } = memoryLog();
  const script = path.join(t.testdir(), 'chatty');
  writeFileSync(script, "#!/bin/sh\nprintf '%10000s\\n' x | tr ' ' a >&2\nexit 7\n", { mode: 0o755 });
  const options: HostProcessOptions = {
    file: probes.misbehave, label: 'misbehave.so', log, config: Buffer.from('{}'), timeoutMs: 1000, maxMemoryMb: 512,
    maxOutputBytes: 1024, maxInputBytes: 1024, maxQueue: 1, restart: RESTART, hostBinary: script,
  };
  await t.rejects(HostProcess.start(options, () => {}), {
    code: 'HEIMDALL_ERR_PLUGIN_HOST',
    message: /did not start: plugin host exited with code 7 while loading the plugin/,
  });
  await until(() => lines.filter((l) => l.stream === 'stderr').length === 3);
  const pieces = lines.filter((l) => l.stream === 'stderr');
  t.same(pieces.map((l) => l.msg.length), [4096, 4096, 1808]);
  t.match(pieces[0], { level: 40, plugin: 'misbehave.so' }, 'named by its file, before its name is known');
});

t.test('close() runs Cleanup, and the child exits 0; it is idempotent', async (t) => {
  const { host, lines } = await startHost(t);
  await pre(host, 'x');
  const closing = host.close();
  t.equal(host.close(), closing, 'a second close() is the same');
  await closing;
  t.equal(host.state(), 'closed');
  t.match(lines.find((l) => l.stream === 'stdout'), { msg: 'misbehave: cleanup' });
  t.match(lines.find((l) => l.msg === 'plugin host exited'), { code: 0, signal: null });
  const after = await failure(pre(host, 'x'));
  t.equal(after.message, 'plugin is closed');
});

t.test('close() lets the calls already asked for finish first', async (t) => {
  const { host } = await startHost(t, { config: Buffer.from('{"sleep_ms":100}') });
  const running = pre(host, 'trigger:sleep');
  const closing = host.close();
  t.same(await running, { status: 0, output: undefined });
  await closing;
  t.equal(host.state(), 'closed');
});

// ---- The protocol, below HostProcess ----------------------------------------------------------------------------

t.test('frames: requests encode as documented, responses decode from any cut of the stream', async (t) => {
  const frame = encodeRequest(Op.POST, [Buffer.from('ab'), null, Buffer.from('c')]);
  t.same([...frame], [
    23, 0, 0, 0, // body_len: 4 (op, pad) + 4 (nbufs) + 12 (lens) + 3
    5, 0, 0, 0, // op POST, pad
    3, 0, 0, 0, // nbufs
    2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0x61, 0x62, 0x63,
  ]);
  t.same(encodeRequestHeader(Op.POST, [Buffer.from('ab'), null, Buffer.from('c')]), frame.subarray(0, 24));

  const response = (status: number, flags: number, output: string): Buffer => {
    const out = Buffer.from(output);
    const b = Buffer.alloc(12 + out.length);
    b.writeUInt32LE(8 + out.length, 0);
    b.writeInt32LE(status, 4);
    b.writeUInt32LE(flags, 8);
    out.copy(b, 12);
    return b;
  };
  const stream = Buffer.concat([response(0, 0, ''), response(1, FLAG_OUTPUT, 'bad'), response(-2, FLAG_OUTPUT | FLAG_HOST, 'x'.repeat(100))]);
  for (const cut of [1, 3, 5, 13, stream.length]) {
    const reader = new ResponseReader(1000);
    const got: Response[] = [];
    for (let at = 0; at < stream.length; at += cut) reader.push(stream.subarray(at, at + cut), (r) => got.push(r));
    t.same(got.map((r) => [r.status, r.flags, outputOf(r)]), [[0, 0, undefined], [1, 1, 'bad'], [-2, 3, 'x'.repeat(100)]], `cut every ${cut}`);
  }
  t.throws(() => new ResponseReader(50).push(response(0, 1, 'y'.repeat(60)), () => {}), ProtocolError);
  t.throws(() => new ResponseReader(50).push(Buffer.from([4, 0, 0, 0]), () => {}), ProtocolError);
});

/** The host on its own, spoken to frame by frame. */
function rawHost(file: string, maxInput = 1 << 20): { ask(op: Op, bufs: (Buffer | null)[]): Promise<Response>; send(b: Buffer): void; exit: Promise<number | null> } {
  const child = spawn(DEFAULT_HOST_BINARY, [file, String(maxInput), String(1 << 20)], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const channel = child.stdio[3] as Socket;
  const reader = new ResponseReader(1 << 21);
  const waiting: ((r: Response) => void)[] = [];
  channel.on('data', (chunk: Buffer) => reader.push(chunk, (r) => waiting.shift()?.(r)));
  channel.on('error', () => {});
  return {
    ask: (op, bufs) => new Promise((resolve) => {
      waiting.push(resolve);
      channel.write(encodeRequest(op, bufs));
    }),
    send: (b) => channel.write(b),
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
}

t.test('the host answers "not exported" for a hook the plugin lacks, and exits 3 on a frame over max_input', async (t) => {
  const host = rawHost(probes.misbehave, 4096);
  const hello = await host.ask(Op.HELLO, []);
  t.equal(hello.status, 0);
  t.match(JSON.parse(outputOf(hello)!), { abi_version: 65537, name: 'misbehave', concurrency: 1 });
  t.equal((await host.ask(Op.INIT, [Buffer.from('{}')])).status, 0);
  const transport = await host.ask(Op.TRANSPORT, [CTX, Buffer.from('{}'), Buffer.from('')]);
  t.equal(transport.status, HostStatus.NOT_EXPORTED);
  t.equal(transport.flags, FLAG_OUTPUT | FLAG_HOST);
  t.equal(outputOf(transport), 'not exported');
  host.send(encodeRequest(Op.PRE, [CTX, Buffer.alloc(5000)]));
  t.equal(await host.exit, 3);
});

t.test('the host exits 0 when the gateway goes away', async (t) => {
  const child = spawn(DEFAULT_HOST_BINARY, [probes.misbehave, '4096', '4096'], { stdio: ['ignore', 'pipe', 'ignore', 'pipe'] });
  const channel = child.stdio[3] as Socket;
  let stdout = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  channel.write(encodeRequest(Op.HELLO, []));
  channel.write(encodeRequest(Op.INIT, [Buffer.from('{}')]));
  await new Promise((resolve) => setTimeout(resolve, 100));
  channel.end();
  const code = await new Promise((resolve) => child.on('exit', resolve));
  t.equal(code, 0);
  t.match(stdout, 'misbehave: cleanup', 'after Init succeeded, Cleanup runs');
});
