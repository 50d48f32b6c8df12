/** The command line of `heimdall plugin test`: options to cases, the report to stdout, the exit status. */
import { Errors } from '../errors.js';
import type { ExecutionMode, JsonObject } from '../plugins/plugin.js';
import { formatPluginTest, runPluginTest } from './plugin-test.js';
import { parseExpectation, readFixture, sampleCase, type TestCase } from './plugin-test-cases.js';

export const PLUGIN_TEST_USAGE = `       heimdall plugin test FILE [--fixture CASES.json]... [--expect EXPECTATION]... [--plugin-config JSON]
                            [--message TEXT] [--stream] [--mode inline|threaded|isolated] [--json] [--full]

  Runs the plugin's hooks offline on the built-in sample (or each fixture file's cases) and prints each hook's
  input, output, decision and time. Exits 1 when an expectation fails or a hook fails unexpectedly.
  EXPECTATION: HOOK=DECISION[:STATUS] or HOOK~TEXT, HOOK one of init, transport, prehook, posthook, chunk,
  chunk[N], chunk[last]; e.g. --expect 'prehook=short-circuit:429' --expect 'chunk[last]=modify' --expect 'posthook~tag'`;

export interface PluginTestFlags {
  fixture?: string[];
  expect?: string[];
  'plugin-config'?: string;
  message?: string;
  stream?: boolean;
  json?: boolean;
  full?: boolean;
  mode?: string;
  'timeout-ms'?: string;
}

export async function pluginTestCommand(file: string, flags: PluginTestFlags): Promise<number> {
  const expect = (flags.expect ?? []).map((e) => parseExpectation(e, '--expect'));
  let config: JsonObject | undefined;
  if (flags['plugin-config'] !== undefined) {
    try {
      config = JSON.parse(flags['plugin-config']) as JsonObject;
    } catch (err) {
      throw Errors.PLUGIN_TEST_INPUT('--plugin-config', `not JSON (${(err as Error).message})`, 'Give the plugin\'s config as a JSON object: --plugin-config \'{"key": 1}\'');
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw Errors.PLUGIN_TEST_INPUT('--plugin-config', 'not a JSON object', 'Give the plugin\'s config as a JSON object: --plugin-config \'{"key": 1}\'');
    }
  }
  let cases: TestCase[] = [];
  for (const fixture of flags.fixture ?? []) {
    const read = readFixture(fixture);
    config ??= read.config;
    cases.push(...read.cases);
  }
  if (cases.length === 0) cases = [sampleCase({ message: flags.message, stream: flags.stream })];
  // --expect applies to every case.
  for (const c of cases) c.expect.push(...expect);
  const mode = flags.mode as ExecutionMode | undefined;
  if (mode !== undefined && !['inline', 'threaded', 'isolated'].includes(mode)) {
    throw Errors.PLUGIN_TEST_INPUT('--mode', `unknown mode ${JSON.stringify(mode)}`, 'Use inline, threaded or isolated');
  }
  const timeoutMs = flags['timeout-ms'] !== undefined ? Number(flags['timeout-ms']) : undefined;
  const report = await runPluginTest(file, { config, cases, mode, timeoutMs });
  console.log(flags.json ? JSON.stringify(report, null, 2) : formatPluginTest(report, { full: flags.full }));
  return report.ok ? 0 : 1;
}
