// Heimdall as the benchmark runs it: the built gateway (dist/), the OpenAI provider pointed at the benchmark
// upstream, N passthrough plugins, metrics on and the default log level (its lines go to stdout, which the
// benchmark discards), exactly as a deployment would run it.
//
//   node bench/targets/heimdall.mjs <upstreamUrl> [plugin.so ...]
//
// BENCH_CONFIG, when set, is JSON merged over that config at the top level, to measure a setting's cost:
//   BENCH_CONFIG='{"log":{"level":"info","requests":false}}'
import { createGateway, parseConfig } from '../../dist/index.js';

const [upstream, ...plugins] = process.argv.slice(2);
const config = parseConfig(
  {
    providers: { openai: { type: 'openai', base_url: `${upstream}/v1` } },
    plugins: plugins.map((path) => ({ path })),
    ...JSON.parse(process.env.BENCH_CONFIG ?? '{}'),
  },
  'benchmark config',
);
const gateway = await createGateway({ config, file: '', baseDir: process.cwd() });
const { url } = await gateway.listen('127.0.0.1', 0);
process.send?.({ url });
process.on('message', async (m) => {
  if (m === 'cpu') return process.send?.({ cpu: process.cpuUsage() }); // the benchmark's CPU time per request
  if (m !== 'stop') return;
  await gateway.close();
  process.exit(0); // a normal exit, so that --cpu-prof writes its profile
});
process.on('disconnect', () => process.exit(0));
