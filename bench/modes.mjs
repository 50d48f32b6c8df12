// One PreHook call in each execution mode, 1 KB request, the plugin answering "unchanged": what the pipeline pays per
// hook call in each mode, measured in one run so the three are comparable.
//
//   inline     a synchronous koffi call on the event loop
//   threaded   a koffi asynchronous call: to a libuv worker thread and back to the event loop, awaited
//   isolated   a round trip to the plugin's child process over its socket, awaited
//
// Calls are made one after the other (each awaited before the next), so each figure is the latency one call adds,
// not the throughput of many in parallel. Beside them, the floor of each mechanism on this machine, measured in the
// same run: a round trip through libuv's thread pool that does nothing (fs.access of "/"), and a round trip of the
// same bytes through a child process that does nothing (cat). Run by bench/run.mjs in a child process of its own (with the thread pool
// sized as the heimdall command sizes it); `node bench/modes.mjs <plugin.so>` prints the same JSON.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPlugin } from '../dist/plugins/loader.js';
import { RequestContext } from '../dist/pipeline/context.js';
import { chatRequest } from './request.mjs';

const BYTES = 1024;

/** Nanoseconds per call: the median of `rounds` rounds of `calls` awaited calls each, after a warm-up round. */
async function measure(call, calls, rounds = 7) {
  for (let i = 0; i < calls; i++) await call();
  const perCall = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) {
      const result = call();
      if (result instanceof Promise) await result;
    }
    perCall.push(Number(process.hrtime.bigint() - t0) / calls);
  }
  perCall.sort((a, b) => a - b);
  return perCall[Math.floor(rounds / 2)];
}

/** A thread-pool round trip with no work in it: what any threaded call pays at least. */
function threadHop() {
  return new Promise((resolve) => fs.access('/', resolve));
}

/** A child process that echoes what it is sent, and a round trip of `bytes` through it. */
function processHop(bytes) {
  const child = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
  let waiting;
  let got = 0;
  child.stdout.on('data', (chunk) => {
    got += chunk.length;
    if (got >= bytes.length) {
      got -= bytes.length;
      waiting();
    }
  });
  return {
    call: () => new Promise((resolve) => {
      waiting = resolve;
      child.stdin.write(bytes);
    }),
    close: () => child.kill(),
  };
}

export async function runModes(pluginFile) {
  const ctx = new RequestContext('0b1c6c1e-6d43-4c4e-9a59-6a3c1f0e2d11', '/v1/chat/completions', {
    host: '127.0.0.1:8080', 'content-type': 'application/json', 'user-agent': 'OpenAI/JS 4.0', accept: 'application/json',
  });
  ctx.setTarget('openai', 'gpt-4o-mini', false);
  const ctxBytes = ctx.bytes();
  const request = chatRequest(BYTES);
  const settings = { timeout_ms: 10_000, max_queue: 1024, max_memory_mb: 512, max_output_bytes: 16 * 1024 * 1024, plugin_threads: 16 };
  const result = { bytes: request.length };
  for (const [mode, calls] of [['inline', 200_000], ['threaded', 20_000], ['isolated', 20_000]]) {
    const plugin = await loadPlugin(pluginFile, { config: {}, execution: { ...settings, mode } });
    const first = await plugin.preHook(ctxBytes, request);
    if (first.kind !== 'continue') throw new Error('the benchmark plugin must answer "unchanged"');
    result[`${mode}_ns`] = await measure(() => plugin.preHook(ctxBytes, request), calls);
    await plugin.close();
  }
  result.threaded_added_ns = result.threaded_ns - result.inline_ns;
  result.isolated_added_ns = result.isolated_ns - result.inline_ns;
  result.thread_hop_floor_ns = await measure(threadHop, 20_000);
  const echo = processHop(Buffer.concat([ctxBytes, request]));
  result.process_hop_floor_ns = await measure(echo.call, 20_000);
  echo.close();
  return result;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/modes.mjs <plugin.so>');
    process.exit(2);
  }
  const result = await runModes(file);
  if (process.send) process.send(result);
  else console.log(JSON.stringify(result, null, 2));
}
