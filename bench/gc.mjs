#!/usr/bin/env node
// What Heimdall allocates per request, and how much of it survives long enough to reach the old generation: the
// numbers behind its GC pauses and so behind its p99. Heimdall (3 passthrough plugins unless --plugins 0) runs with
// V8's GC trace on, under a fixed rate; the trace of the measured part is summed.
//
//   node bench/gc.mjs [--rate 2000] [--seconds 5] [--plugins 3] [--floor]   (after npm run bench)
//
// --floor measures the floor proxy instead (bench/targets/floor.mjs): what any Node gateway allocates.
//
// Unlike times, these counts barely move with other work on the machine, so a change that allocates more, or
// keeps per-request objects alive across a young-generation GC, shows here first.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { paced, saturate } from './load.mjs';
import { chatRequest } from './request.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const { values: opts } = parseArgs({
  options: { rate: { type: 'string', default: '2000' }, seconds: { type: 'string', default: '5' }, plugins: { type: 'string', default: '3' }, floor: { type: 'boolean', default: false } },
});
const plugins = ['bench1', 'bench2', 'bench3']
  .slice(0, Number(opts.plugins))
  .map((name) => path.join(repo, 'build', 'bench', `${name}${process.platform === 'darwin' ? '.dylib' : '.so'}`));
if (!existsSync(path.join(repo, 'dist', 'index.js')) || plugins.some((p) => !existsSync(p))) {
  console.error('bench/gc.mjs: run npm run bench once first (it builds dist/ and the passthrough plugins)');
  process.exit(1);
}

const upstream = await start('targets/upstream.mjs', ['0'], [], false);
const heimdall = opts.floor
  ? await start('targets/floor.mjs', [upstream.url], ['--trace-gc-nvp'], true)
  : await start('targets/heimdall.mjs', [upstream.url, ...plugins], ['--trace-gc-nvp'], true);
const body = chatRequest(1024);
await saturate(heimdall.url, body, { connections: 32, seconds: 2 }); // warm-up: JIT, pools, connections
await paced(heimdall.url, body, { rate: 100, seconds: 0.5 });
heimdall.mark();
const { requests } = await paced(heimdall.url, body, { rate: Number(opts.rate), seconds: Number(opts.seconds) });
const trace = heimdall.since();
await heimdall.stop();
await upstream.stop();

const events = trace
  .split('\n')
  .filter((line) => line.includes('gc='))
  .map((line) => Object.fromEntries(line.split(/\s+/).filter((kv) => kv.includes('=')).map((kv) => kv.split('='))));
const scavenges = events.filter((e) => e.gc === 's');
const full = events.filter((e) => e.gc === 'mc' || e.gc === 'ms');
const sum = (list, key) => list.reduce((n, e) => n + Number(e[key] ?? 0), 0);
const max = (list, key) => list.reduce((n, e) => Math.max(n, Number(e[key] ?? 0)), 0);
// No latency here: the GC trace and the access lines come through this process, which also sends the load.
console.log(`${opts.floor ? 'The floor proxy' : `Heimdall, ${plugins.length} C plugins`}, ${requests} requests at ${opts.rate}/s:`);
console.log(`  young-generation GCs: ${scavenges.length}, longest pause ${max(scavenges, 'pause').toFixed(2)} ms`);
console.log(`  full GCs:             ${full.length}, longest pause ${max(full, 'pause').toFixed(2)} ms`);
console.log(`  allocated per request: ${(sum(scavenges, 'allocated') / requests / 1024).toFixed(1)} KB`);
console.log(`  promoted per request:  ${Math.round(sum(scavenges, 'promoted') / requests)} bytes (to the old generation)`);

/** Forks a server; with `trace`, keeps its stdout (the GC trace) and can return what it printed since mark(). */
function start(script, args, execArgv, trace) {
  const child = fork(path.join(here, script), args, { cwd: repo, execArgv, stdio: ['ignore', trace ? 'pipe' : 'ignore', 'inherit', 'ipc'] });
  let out = '';
  let from = 0;
  child.stdout?.on('data', (chunk) => (out += chunk));
  return new Promise((resolve) => {
    child.once('message', ({ url }) =>
      resolve({
        url,
        mark: () => (from = out.length),
        since: () => out.slice(from),
        stop: () =>
          new Promise((done) => {
            child.once('exit', done);
            child.send('stop');
          }),
      }),
    );
  });
}
