/**
 * `heimdall plugin inspect`: the loader's checks as a report, on good and bad files, with a fix for each problem
 * and an exit code scripts can use.
 */
import t from 'tap';
import { formatReport, inspectPlugin } from '../src/commands/inspect.js';
import { runCli } from './helpers/cli.js';
import { binaryFixtures, probePlugins } from './helpers/fixtures.js';

const probes = await probePlugins();
const bins = await binaryFixtures();

t.test('a loadable plugin: format, OS, arch, ABI version, hooks, language, name', async (t) => {
  const r = inspectPlugin(probes.p1);
  t.match(r, {
    format: 'elf', os: 'linux', arch: ['x64'], language: 'c', name: 'p1', abi_version: '1.2', loadable: true, problems: [],
    exports: { required: ['heimdall_plugin_abi_version', 'heimdall_plugin_free', 'GetName', 'Cleanup'], missing: [] },
  });
  t.same(r.exports.hooks, ['Init', 'TransportInterceptor', 'PreHook', 'PostHook', 'StreamChunkHook']);
  const text = formatReport(r);
  t.match(text, /format\s+ELF 64-bit LSB shared object, x86-64 \(linux\/x64\)/);
  t.match(text, /loadable\s+yes/);
});

t.test('problems, each with its code and fix', async (t) => {
  const cases: [string, string, string, RegExp][] = [
    ['wrong arch', bins.armPatched, 'HEIMDALL_ERR_PLUGIN_ARCH', /built for linux\/arm64.*Build the plugin on/],
    ['missing symbols', probes.nocleanup, 'HEIMDALL_ERR_PLUGIN_SYMBOL', /GetName, Cleanup.*Export them/],
    ['wrong ABI', probes.abi2, 'HEIMDALL_ERR_PLUGIN_ABI', /gateway speaks ABI 1\.2, plugin was built for ABI 2\.0.*Rebuild/],
    ['not a shared object', bins.text, 'HEIMDALL_ERR_PLUGIN_FORMAT', /text.*shared library/],
    ['Mach-O on Linux', bins.machoArm64, 'HEIMDALL_ERR_PLUGIN_FORMAT', /Mach-O/],
    ['no such file', `${bins.dir}/missing.so`, 'HEIMDALL_ERR_PLUGIN_NOT_FOUND', /ENOENT/],
  ];
  for (const [what, file, code, message] of cases) {
    const r = inspectPlugin(file);
    t.equal(r.loadable, false, `${what}: not loadable`);
    t.equal(r.problems[0]?.code, code, `${what}: code`);
    t.match(r.problems[0]?.message, message, `${what}: message and fix`);
  }
  t.equal(inspectPlugin(probes.abi2).abi_version, '2.0', 'the version found is reported');
  t.equal(inspectPlugin(probes.p1.replace(/\.so$/, '')).loadable, true, 'the extension may be left out, as in config.json');
  t.same(inspectPlugin(probes.nocleanup).exports.missing, ['GetName', 'Cleanup']);
});

t.test('the command: exit 0 when loadable, 1 when not, --json for scripts', async (t) => {
  const good = runCli(['plugin', 'inspect', probes.p2, '--json']);
  t.equal(await good.exited, 0);
  t.match(JSON.parse(good.out()), { name: 'p2', loadable: true });
  const bad = runCli(['plugin', 'inspect', bins.armPatched]);
  t.equal(await bad.exited, 1);
  t.match(bad.out(), /loadable\s+no/);
  t.match(bad.out(), /HEIMDALL_ERR_PLUGIN_ARCH:/);
});
