/**
 * `heimdall plugin inspect FILE`: what a plugin file is and whether this gateway can load it, using the loader's
 * own checks, each problem with its fix. The first thing to run when a load fails.
 *
 * Only a file that passes every check that needs no plugin code is opened, to read its ABI version and name; Init
 * is never called. The opening runs in a child process (probe.ts) with a deadline: a library whose constructors or
 * ABI functions never return fails the inspection instead of hanging it.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Errors, HeimdallError } from '../errors.js';
import { HOST_ABI_MAJOR, HOST_ABI_MINOR, OPTIONAL_SYMBOLS, REQUIRED_SYMBOLS } from '../plugins/abi.js';
import { describe, inspectBinary, type BinaryInfo } from '../plugins/inspect.js';
import { checkFile, formatAbiVersion, newerMinorWarning, resolvePluginPath } from '../plugins/loader.js';
import type { ProbeResult } from './probe.js';

export interface InspectReport {
  file: string;
  format: string;
  description: string;
  os: string | null;
  arch: string[];
  language: string;
  name: string | null;
  abi_version: string | null;
  host: { os: string; arch: string; abi_version: string };
  exports: { required: string[]; missing: string[]; hooks: string[] };
  loadable: boolean;
  problems: { code: string; message: string }[];
  /** What does not stop the load but is worth knowing (a newer minor ABI version). */
  warnings: string[];
}

export interface InspectOptions {
  /** How long opening the library may take (dlopen, the ABI version, GetName). */
  openTimeoutMs?: number;
}

/** Far above what opening any sane library takes (well under a second), and still a bound. */
const OPEN_TIMEOUT_MS = 20_000;

export function inspectPlugin(input: string, options: InspectOptions = {}): InspectReport {
  const file = resolvePluginPath(input, process.cwd()); // as config.json paths: the extension may be left out
  const report: InspectReport = {
    file,
    format: 'unknown',
    description: '',
    os: null,
    arch: [],
    language: 'unknown',
    name: null,
    abi_version: null,
    host: { os: process.platform, arch: process.arch, abi_version: formatAbiVersion((HOST_ABI_MAJOR << 16) | HOST_ABI_MINOR) },
    exports: { required: [], missing: [], hooks: [] },
    loadable: false,
    problems: [],
    warnings: [],
  };
  let binary: BinaryInfo | undefined;
  try {
    binary = inspectBinary(file);
  } catch (err) {
    report.problems.push(problem(err));
    return report;
  }
  report.format = binary.format;
  report.description = describe(binary);
  report.os = binary.platform ?? null;
  report.arch = binary.slices.map((s) => s.arch ?? s.cpu);
  report.language = binary.language;
  report.exports.required = REQUIRED_SYMBOLS.filter((s) => binary.symbols.has(s));
  report.exports.missing = binary.hasSymbolTable ? REQUIRED_SYMBOLS.filter((s) => !binary.symbols.has(s)) : [];
  report.exports.hooks = OPTIONAL_SYMBOLS.filter((s) => binary.symbols.has(s));

  try {
    checkFile(file);
    const probed = probeInChild(file, options.openTimeoutMs ?? OPEN_TIMEOUT_MS);
    if (probed.abi_version !== null) report.abi_version = formatAbiVersion(probed.abi_version);
    report.name = probed.name;
    if (probed.problem !== null) throw new HeimdallError(probed.problem.code, 500, 'plugin_error', probed.problem.message);
    const missing = REQUIRED_SYMBOLS.filter((s) => !probed.exports.includes(s));
    if (missing.length > 0) throw Errors.PLUGIN_SYMBOL(file, missing, binary.language);
    const version = probed.abi_version ?? 0;
    if (version >>> 16 !== HOST_ABI_MAJOR) throw Errors.PLUGIN_ABI(file, formatAbiVersion(version), report.host.abi_version);
    const warning = newerMinorWarning(version, file);
    if (warning !== undefined) report.warnings.push(warning);
    if (probed.name === null || probed.name === '') throw Errors.PLUGIN_NAME(file, 'GetName returned no name');
    report.loadable = true;
  } catch (err) {
    report.problems.push(problem(err));
  }
  return report;
}

/** Runs probe.ts on the file in a child process, which is killed at the deadline. */
function probeInChild(file: string, timeoutMs: number): ProbeResult {
  const self = fileURLToPath(import.meta.url);
  const script = path.join(path.dirname(self), `probe${path.extname(self)}`);
  // The parent's loader flags come along, so the TypeScript sources run the same way under the tests.
  const child = spawnSync(process.execPath, [...process.execArgv, script, file], {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1024 * 1024,
  });
  const stuck = (cause: string) => Errors.PLUGIN_OPEN_STUCK(file, cause);
  if (child.error !== undefined && (child.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
    throw stuck(`it was still running after ${timeoutMs} ms, and was stopped`);
  }
  if (child.error !== undefined) throw Errors.INTERNAL(`cannot run the inspection's child process: ${child.error.message}`);
  const line = child.stdout.trim().split('\n').pop() ?? '';
  if (child.signal !== null || !line.startsWith('{')) {
    const how = child.signal !== null ? `the process opening it died of ${child.signal}` : `the process opening it exited with status ${child.status}`;
    const said = child.stderr.trim().split('\n').slice(-3).join(' / ');
    throw stuck(said ? `${how} (${said})` : how);
  }
  return JSON.parse(line) as ProbeResult;
}

export function formatReport(r: InspectReport): string {
  const rows: [string, string][] = [
    ['file', r.file],
    ['format', r.description || r.format],
    ['language', r.language],
    ['name', r.name ?? '(not read)'],
    ['abi', `${r.abi_version ?? '(not read)'}; this gateway speaks ${r.host.abi_version} on ${r.host.os}/${r.host.arch}`],
    ['exports', [...r.exports.required, ...r.exports.hooks].join(', ') || '(none found)'],
  ];
  if (r.exports.missing.length > 0) rows.push(['missing', r.exports.missing.join(', ')]);
  rows.push(['loadable', r.loadable ? 'yes' : 'no']);
  const lines = rows.map(([k, v]) => `${k.padEnd(9)}${v}`);
  for (const w of r.warnings) lines.push('', 'warning:', `  ${w}`);
  for (const p of r.problems) lines.push('', `${p.code}:`, `  ${p.message}`);
  return lines.join('\n');
}

function problem(err: unknown): { code: string; message: string } {
  const e = err instanceof HeimdallError ? err : Errors.INTERNAL(String(err));
  return { code: e.code, message: e.message };
}
