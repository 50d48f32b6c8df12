/**
 * `heimdall plugin inspect FILE`: what a plugin file is and whether this gateway can load it, using the loader's
 * own checks, each problem with its fix. The first thing to run when a load fails.
 *
 * Only a file that passes every check that needs no plugin code is opened, to read its ABI version and name;
 * Init is never called.
 */
import { Errors, HeimdallError } from '../errors.js';
import { HOST_ABI_MAJOR, HOST_ABI_MINOR, OPTIONAL_SYMBOLS, REQUIRED_SYMBOLS } from '../plugins/abi.js';
import { describe, inspectBinary, type BinaryInfo } from '../plugins/inspect.js';
import { checkAbiVersion, checkFile, formatAbiVersion, openLibrary, resolvePluginPath } from '../plugins/loader.js';

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
}

export function inspectPlugin(input: string): InspectReport {
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
    const lib = openLibrary(file);
    const version = lib.abiVersion();
    report.abi_version = formatAbiVersion(version);
    checkAbiVersion(lib, file);
    const name = lib.getName();
    report.name = name;
    if (name === null || name === '') throw Errors.PLUGIN_NAME(file, 'GetName returned no name');
    report.loadable = true;
  } catch (err) {
    report.problems.push(problem(err));
  }
  return report;
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
  for (const p of r.problems) lines.push('', `${p.code}:`, `  ${p.message}`);
  return lines.join('\n');
}

function problem(err: unknown): { code: string; message: string } {
  const e = err instanceof HeimdallError ? err : Errors.INTERNAL(String(err));
  return { code: e.code, message: e.message };
}
