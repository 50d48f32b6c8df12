/**
 * The isolated mode's transport: a real plugin host process (build/Release/heimdall-plugin-host, built by npm
 * install) running the misbehave test plugin, which crashes, hangs, leaks and shouts on demand. Whatever it does, the
 * gateway's side fails the calls concerned with a message that names the cause, and starts a new child.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import t, { type Test } from 'tap';
import { HeimdallError } from '../src/errors.js';
import type { CallResult } from '../src/plugins/abi.js';
import { DEFAULT_HOST_BINARY, HostProcess, type HostInfo, type HostProcessOptions } from '../src/plugins/isolated/host-process.js';
import {
  ABSENT,
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
import { REPO, probePlugins } from './helpers/fixtures.js';

const probes = await probePlugins();
const CTX = Buffer.from('{"request_id":"r1","values":{}}');

/**
 * A second test plugin, for what misbehave.c does not do. PreHook, on the whole request being one of: "fork" starts a
 * process that sleeps forever and answers its pid; "flood" writes 1000 lines to stdout; "env" answers the names in its
 * environment, one a line; "loop" spins; "segv" crashes. PostHook answers whether its response and error are NULL.
 */
const TRICKS_C = String.raw`
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "heimdall_plugin.h"

HEIMDALL_PLUGIN_DEFINE_ABI()
extern char **environ;

HEIMDALL_EXPORT const char *GetName(void) { return "tricks"; }
HEIMDALL_EXPORT void Cleanup(void) {}

static int is(const uint8_t *data, size_t len, const char *word) { return len == strlen(word) && memcmp(data, word, len) == 0; }

HEIMDALL_EXPORT int32_t PreHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *req, size_t req_len, heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len;
  char text[64 * 1024];
  if (is(req, req_len, "fork")) {
    pid_t pid = fork();
    if (pid == 0) {
      close(1), close(2), close(3);
      for (;;) pause();
    }
    snprintf(text, sizeof text, "%d", (int)pid);
    return heimdall_output_str(out, text);
  }
  if (is(req, req_len, "flood")) {
    for (int i = 0; i < 1000; i++) printf("line %d\n", i);
    fflush(stdout);
  }
  if (is(req, req_len, "env")) {
    size_t at = 0;
    for (char **e = environ; *e != NULL && at + strlen(*e) + 2 < sizeof text; e++) {
      at += (size_t)sprintf(text + at, "%.*s\n", (int)strcspn(*e, "="), *e); /* the name: values may hold newlines */
    }
    return heimdall_output(out, text, at);
  }
  if (is(req, req_len, "loop")) {
    volatile unsigned long spin = 0;
    for (;;) spin++;
  }
  if (is(req, req_len, "segv")) raise(SIGSEGV);
  return HEIMDALL_OK;
}

HEIMDALL_EXPORT int32_t PostHook(const uint8_t *ctx, size_t ctx_len, const uint8_t *response, size_t response_len,
                                 const uint8_t *error, size_t error_len, heimdall_buf_t *out) {
  (void)ctx, (void)ctx_len;
  char text[128];
  snprintf(text, sizeof text, "response %s %zu, error %s %zu", response ? "ptr" : "NULL", response_len,
           error ? "ptr" : "NULL", error_len);
  return heimdall_output_str(out, text);
}
`;
const scratch = mkdtempSync(path.join(tmpdir(), 'heimdall-isolated-test-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const TRICKS = path.join(scratch, 'tricks.so');
writeFileSync(path.join(scratch, 'tricks.c'), TRICKS_C);
await promisify(execFile)('cc', ['-shared', '-fPIC', '-O1', '-Wall', '-I', path.join(REPO, 'native', 'include'), '-o', TRICKS, path.join(scratch, 'tricks.c')]);

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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether a process exists and is not a zombie (one that nobody reaped yet is as good as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
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
  t.equal(host.info.abiVersion, 0x00010002);
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
  // Asked while the child restarts, a call waits for it.
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
  t.equal(host.state(), 'running');
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

t.test('a runaway hook is killed at its deadline; only its call fails: the others go to the next child', { timeout: 10_000 }, async (t) => {
  const { host, lines } = await startHost(t, { timeoutMs: 1000 });
  const started = Date.now();
  const looping = failure(pre(host, 'trigger:loop'));
  await sleep(500);
  // Queued behind it (never sent), with a deadline 500 ms after its own.
  const queued = pre(host, 'x');
  // Asked the moment the call fails: after the kill, before the child's exit is seen.
  const afterKill = looping.then(() => pre(host, 'x'));
  const err = await looping;
  const took = Date.now() - started;
  t.equal(err.message, 'plugin host was killed: PreHook ran past its deadline of 1000 ms');
  t.ok(took >= 990 && took < 1500, `failed at the deadline (${took} ms)`);
  t.same(await queued, { status: 0, output: undefined }, 'the call queued behind it is served by the new child');
  t.same(await afterKill, { status: 0, output: undefined }, 'so is the one asked before the exit');
  t.equal(host.stats().restarts, 1);
  t.match(host.stats().lastExit, { signal: 'SIGKILL', reason: 'deadline' });
  t.match(lines.filter((l) => l.level === 50), [{ hook: 'PreHook', reason: 'deadline' }], 'one error line: the kill');
});

t.test('after a crash, the calls waiting go to the new child, bounded by max_queue and their deadlines', async (t) => {
  const { host } = await startHost(t, { maxQueue: 2, restart: { ...RESTART, initialDelayMs: 300 } });
  const crash = failure(pre(host, 'trigger:segv'));
  const behind = pre(host, 'x');
  t.equal((await crash).message, 'plugin host exited on signal SIGSEGV while running PreHook');
  t.equal(host.state(), 'restarting');
  const during = pre(host, 'x');
  const started = Date.now();
  const refused = await failure(pre(host, 'x'));
  t.ok(Date.now() - started < 100, 'past max_queue, a call fails at once');
  t.match(refused.message, /PreHook not called: 2 calls are already waiting for the plugin host \(max_queue\)/);
  t.same(await Promise.all([behind, during]), [{ status: 0, output: undefined }, { status: 0, output: undefined }]);
  t.equal(host.stats().restarts, 1);

  // A call that would wait for a restart longer than its deadline fails at its deadline.
  const { host: slow } = await startHost(t, { timeoutMs: 200, restart: { ...RESTART, initialDelayMs: 1000 } });
  await failure(pre(slow, 'trigger:segv'));
  const asked = Date.now();
  const late = await failure(pre(slow, 'x'));
  const waited = Date.now() - asked;
  t.ok(waited >= 190 && waited < 600, `at its deadline (${waited} ms)`);
  // The cause is named when the restart is still pending at the deadline; on a busy machine the child may be reaped
  // late, and then only the wait is.
  t.match(late.message, /^PreHook waited past its deadline of 200 ms for the plugin host(, which is restarting after it exited on signal SIGSEGV while running PreHook)?$/);
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
  // The kill comes during a call (which fails) or between two (then no call fails).
  while (calls < 400 && err === undefined && host.stats().restarts === 0 && host.state() === 'running') {
    calls += 1;
    err = await pre(host, 'trigger:leak').then(
      () => undefined,
      (e: PluginFailure) => e,
    );
    await new Promise((resolve) => setTimeout(resolve, 2)); // about 50 MB between two looks at its memory
  }
  t.ok(calls < 400, `killed after ${calls} calls of 1 MiB`);
  if (err) t.match(err.message, /^plugin host was killed: memory over max_memory_mb \(64 MB\)/);
  t.ok(calls > 40, 'not before it got there');
  await until(() => host.stats().lastExit !== undefined);
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

t.test('a crash loop stops the restarts, calls failing at once, until a cool-down; then one start is tried', async (t) => {
  let refuse = false;
  const { host, lines } = await startHost(
    t,
    { restart: { initialDelayMs: 10, maxDelayMs: 40, maxRestarts: 2, windowMs: 10_000, failedRetryMs: 500 } },
    () => {
      if (refuse) throw new HeimdallError('HEIMDALL_ERR_TEST', 500, 'plugin_error', 'refused by the check');
    },
  );
  for (let i = 0; i < 3; i++) {
    await until(() => host.state() === 'running');
    await failure(pre(host, 'trigger:segv'));
  }
  t.equal(host.state(), 'failed');
  t.equal(host.stats().restarts, 2);
  const started = Date.now();
  const err = await failure(pre(host, 'x'));
  t.ok(Date.now() - started < 100, 'a call fails at once');
  t.match(err.message, /^plugin host failed: it stopped 3 times within 10000 ms \(last, it exited on signal SIGSEGV while running PreHook\); it is not restarted for 500 ms/);
  const errors = lines.filter((l) => l.level === 50);
  t.equal(errors.length, 3, 'one line per exit');
  t.match(errors[2]!.msg, /not restarted for 500 ms/);
  await sleep(200);
  t.equal(host.state(), 'failed', 'it stays so for the cool-down');

  // After it, one start; the crash-loop window starts over.
  await until(() => host.state() === 'running', 2000);
  t.match(lines.find((l) => /starting it again, 500 ms after its crash loop/.test(l.msg)), { level: 40, plugin: 'misbehave' });
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
  t.equal(host.stats().restarts, 3);
  await failure(pre(host, 'trigger:segv'));
  t.equal(host.state(), 'restarting', 'one crash in the new window is no loop');

  // A start after the cool-down that fails is not retried at once: another cool-down.
  await until(() => host.state() === 'running');
  refuse = true;
  for (let i = 0; i < 3 && host.state() === 'running'; i++) await failure(pre(host, 'trigger:segv'));
  await until(() => host.state() === 'failed');
  await until(() => lines.some((l) => /is not restarted for another 500 ms/.test(l.msg)), 2000);
  t.equal(host.state(), 'failed');
  t.match(await failure(pre(host, 'x')), { message: /^plugin host failed: it failed to start again: refused by the check, after a crash loop/ });
  refuse = false;
  await until(() => host.state() === 'running', 2000);
  t.same(await pre(host, 'x'), { status: 0, output: undefined });
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

t.test('a kill, or a crash, takes what the plugin started with it: the whole process group goes', async (t) => {
  const { host } = await startHost(t, { file: TRICKS, timeoutMs: 500 });
  const started: number[] = [];
  t.teardown(() => {
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  const fork = async (): Promise<number> => {
    const pid = Number((await pre(host, 'fork')).output);
    started.push(pid);
    t.ok(alive(pid), 'the plugin started a process');
    return pid;
  };
  const first = await fork();
  t.match(await failure(pre(host, 'loop')), { message: /deadline of 500 ms/ });
  await until(() => !alive(first), 2000);
  t.pass('killed at the deadline, with the child');
  const second = await fork();
  t.match(await failure(pre(host, 'segv')), { message: /SIGSEGV/ });
  await until(() => !alive(second), 2000);
  t.pass('killed when the child crashed');
  const third = await fork();
  await host.close();
  await until(() => !alive(third), 2000);
  t.pass('killed when the child exited on close');
});

t.test('the memory cap does not trust what the child says of itself', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  // A stand-in for the host that speaks the protocol and lies: a page size of 1 byte would make any RSS look tiny.
  const liar = path.join(t.testdir(), 'liar');
  writeFileSync(liar, `#!${process.execPath}
const { Socket } = require('node:net');
const channel = new Socket({ fd: 3, readable: true, writable: true });
let pending = Buffer.alloc(0);
let kept;
const reply = (output) => {
  const out = Buffer.from(output);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(8 + out.length, 0);
  head.writeUInt32LE(out.length > 0 ? 1 : 0, 8);
  channel.write(Buffer.concat([head, out]));
};
channel.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32LE(0)) {
    const op = pending[4];
    pending = pending.subarray(4 + pending.readUInt32LE(0));
    if (op === 1) {
      reply(JSON.stringify({ abi_version: 0x10001, name: 'liar', concurrency: 1, page_size: 1,
        exports: ['heimdall_plugin_abi_version', 'heimdall_plugin_free', 'GetName', 'Cleanup', 'PreHook'] }));
    } else if (op === 4) {
      kept = Buffer.alloc(160 * 1024 * 1024, 1);
      setTimeout(() => reply(''), 2000);
    } else {
      reply('');
      if (op === 7) process.exit(0);
    }
  }
});
channel.on('end', () => process.exit(0));
`, { mode: 0o755 });
  const { host } = await startHost(t, { hostBinary: liar, maxMemoryMb: 128, timeoutMs: 5000 });
  t.equal(host.info.name, 'liar');
  const err = await failure(pre(host, 'x'));
  t.match(err.message, /^plugin host was killed: memory over max_memory_mb \(128 MB\)/);
  t.match(host.stats().lastExit, { reason: 'memory', signal: 'SIGKILL' });
});

t.test("the child's output is rate-limited: past 100 lines a second, lines are dropped, and counted", async (t) => {
  const { host, lines } = await startHost(t, { file: TRICKS });
  t.same(await pre(host, 'flood'), { status: 0, output: undefined });
  await until(() => lines.some((l) => /lines dropped/.test(l.msg)), 3000);
  const logged = lines.filter((l) => l.stream === 'stdout');
  t.equal(logged.length, 100, '100 lines logged');
  t.same(logged.slice(0, 2).map((l) => l.msg), ['line 0', 'line 1']);
  t.match(lines.filter((l) => /lines dropped/.test(l.msg)), [
    { level: 40, plugin: 'tricks', dropped: 900, msg: 'plugin output: 900 lines dropped, over the limit of 100 lines per second' },
  ]);
});

t.test("the child gets a minimal environment: none of the gateway's secrets", async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const key of ['HEIMDALL_TEST_API_KEY', 'LC_HEIMDALL_TEST']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  });
  process.env.HEIMDALL_TEST_API_KEY = 'sk-not-for-plugins';
  process.env.LC_HEIMDALL_TEST = 'kept';
  const { host } = await startHost(t, { file: TRICKS });
  const names = (await pre(host, 'env')).output!.split('\n').filter(Boolean);
  t.notOk(names.includes('HEIMDALL_TEST_API_KEY'), 'no API key');
  t.ok(names.includes('LC_HEIMDALL_TEST') && names.includes('PATH'), 'PATH and LC_* are kept');
  // tap's process tracking adds its own variables to whatever is spawned under it.
  const tap = (n: string) => n.startsWith('_TAPJS_') || n === 'NODE_OPTIONS';
  const others = names.filter((n) => !['PATH', 'HOME', 'LANG', 'TZ'].includes(n) && !n.startsWith('LC_') && !tap(n));
  t.same(others, [], 'nothing else');
});

t.test('an empty buffer reaches the plugin as a valid pointer; only a null one as NULL, as inline', async (t) => {
  const { host } = await startHost(t, { file: TRICKS });
  const post = async (response: Buffer | null, error: Buffer | null) => (await host.call('post', [CTX, response, error])).output;
  t.equal(await post(Buffer.alloc(0), null), 'response ptr 0, error NULL 0');
  t.equal(await post(null, Buffer.alloc(0)), 'response NULL 0, error ptr 0');
  t.equal(await post(Buffer.from('{}'), null), 'response ptr 2, error NULL 0');
  t.equal(await post(null, null), 'response NULL 0, error NULL 0');
});

// ---- The protocol, below HostProcess ----------------------------------------------------------------------------

t.test('frames: requests encode as documented, responses decode from any cut of the stream', async (t) => {
  const frame = encodeRequest(Op.POST, [Buffer.from('ab'), null, Buffer.from('c')]);
  t.same([...frame], [
    23, 0, 0, 0, // body_len: 4 (op, pad) + 4 (nbufs) + 12 (lens) + 3
    5, 0, 0, 0, // op POST, pad
    3, 0, 0, 0, // nbufs
    2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, // null: ABSENT, no bytes
    0x61, 0x62, 0x63,
  ]);
  t.same(encodeRequestHeader(Op.POST, [Buffer.from('ab'), null, Buffer.from('c')]), frame.subarray(0, 24));
  t.equal(ABSENT, 0xffffffff);
  t.same([...encodeRequest(Op.PRE, [Buffer.alloc(0), Buffer.from('x')]).subarray(12, 20)], [0, 0, 0, 0, 1, 0, 0, 0], 'empty is 0');

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
  t.match(JSON.parse(outputOf(hello)!), { abi_version: 0x00010002, name: 'misbehave', concurrency: 1 });
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
