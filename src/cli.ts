#!/usr/bin/env node
/**
 * The heimdall command.
 *
 *   heimdall start [--config config.json] [--host H] [--port N]
 *   heimdall plugin inspect FILE [--json]
 *   heimdall plugin new NAME --lang c|go|rust [--dir DIR]
 *   heimdall plugin test FILE [--fixture F.json]... [--expect E]... [--plugin-config JSON] [--message TEXT] [--stream]
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { runPrimary, workerCount } from './cluster/primary.js';
import { runWorker } from './cluster/worker.js';
import { formatReport, inspectPlugin } from './commands/inspect.js';
import { formatNewPlugin, newPlugin } from './commands/new.js';
import { pluginTestCommand, PLUGIN_TEST_USAGE } from './commands/plugin-test-command.js';
import { loadConfigFile } from './config/load.js';
import { HeimdallError } from './errors.js';
import { createLogger } from './logger.js';
import { createGateway } from './server/app.js';

const USAGE = `usage: heimdall start [--config config.json] [--host HOST] [--port PORT]
       heimdall plugin inspect FILE [--json]
       heimdall plugin new NAME --lang c|go|rust [--dir DIR]
${PLUGIN_TEST_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c', default: 'config.json' },
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      help: { type: 'boolean', short: 'h' },
      json: { type: 'boolean' },
      lang: { type: 'string' },
      dir: { type: 'string' },
      fixture: { type: 'string', multiple: true },
      expect: { type: 'string', multiple: true },
      'plugin-config': { type: 'string' },
      message: { type: 'string' },
      stream: { type: 'boolean' },
      full: { type: 'boolean' },
      mode: { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  const [command] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command === 'plugin' && positionals[1] === 'inspect' && positionals[2] !== undefined) {
    const report = inspectPlugin(positionals[2]);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return report.loadable ? 0 : 1;
  }
  if (command === 'plugin' && positionals[1] === 'new' && positionals[2] !== undefined) {
    const created = newPlugin({ name: positionals[2], lang: values.lang, parent: values.dir });
    console.log(formatNewPlugin(created));
    return 0;
  }
  if (command === 'plugin' && positionals[1] === 'test' && positionals[2] !== undefined) {
    return pluginTestCommand(positionals[2], values);
  }
  if (command !== 'start') {
    console.error(`unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}`);
    return 2;
  }
  return start(values.config, values.host, values.port);
}

async function start(configFile: string, host?: string, port?: string): Promise<number> {
  // A worker of the pool (forked by the primary with the same arguments) takes its config from the primary.
  if (cluster.isWorker) return runWorker();
  const loaded = loadConfigFile(configFile);
  const workers = workerCount(loaded.config.server);
  if (workers > 1) return runPrimary(loaded, workers, host, port !== undefined ? Number(port) : undefined);
  const log = createLogger(loaded.config.log.level);
  const gateway = await createGateway(loaded, { logger: log });
  const { adminUrl } = await gateway.listen(host, port !== undefined ? Number(port) : undefined);
  if (adminUrl !== undefined) log.warn({ url: adminUrl }, 'admin API enabled: it can load native code; keep it on loopback');

  // The first signal drains (up to server.shutdown_timeout_ms); another one cuts the drain short.
  await new Promise<void>((resolve, reject) => {
    let signals = 0;
    const stop = (signal: NodeJS.Signals) => {
      if (signals++ === 0) {
        log.info({ signal }, 'shutting down: finishing requests, then cleaning up plugins');
        gateway.close().then(resolve, reject);
      } else {
        log.warn({ signal }, 'shutting down now: closing every connection');
        void gateway.close({ timeoutMs: 0 });
      }
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  log.info('stopped');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (err: unknown) => {
    if (err instanceof HeimdallError) console.error(`heimdall: ${err.code}: ${err.message}`);
    else console.error('heimdall:', err);
    exit(1);
  },
);

function exit(code: number): void {
  process.exitCode = code;
  // A worker's channel to the primary would keep it alive.
  if (cluster.isWorker) process.exit(code);
}
