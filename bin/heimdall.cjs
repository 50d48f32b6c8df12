#!/usr/bin/env node
// The heimdall command's entry. It only sizes libuv's thread pool, then runs dist/cli.js.
//
// Threaded plugins run on that pool (koffi's asynchronous calls), beside Node's own file system, DNS, crypto and zlib
// work. libuv reads UV_THREADPOOL_SIZE once, when the pool first starts, and loading an ES module starts it; so the
// size is set here, in a CommonJS file that Node reads synchronously, before any module is imported: Node's own 4
// threads plus server.plugin_threads from the config file (16 when unset). A UV_THREADPOOL_SIZE already in the
// environment is left as it is.
'use strict';
const { readFileSync } = require('node:fs');

const NODE_THREADS = 4;
const DEFAULT_PLUGIN_THREADS = 16;

/** server.plugin_threads from the --config file of `heimdall start`; the default when absent or unreadable (the
 * gateway itself reports a bad config file, with its full error). */
function pluginThreads(argv) {
  if (argv[0] !== 'start') return 0;
  let file = 'config.json';
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--config' || arg === '-c') file = argv[i + 1] ?? file;
    else if (arg.startsWith('--config=')) file = arg.slice('--config='.length);
  }
  try {
    const n = JSON.parse(readFileSync(file, 'utf8'))?.server?.plugin_threads;
    return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : DEFAULT_PLUGIN_THREADS;
  } catch {
    return DEFAULT_PLUGIN_THREADS;
  }
}

if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const threads = pluginThreads(process.argv.slice(2));
  if (threads > 0) process.env.UV_THREADPOOL_SIZE = String(NODE_THREADS + threads);
}
import('../dist/cli.js').catch((err) => {
  console.error('heimdall:', err);
  process.exitCode = 1;
});
