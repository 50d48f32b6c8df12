/**
 * The part of `heimdall plugin inspect` that runs plugin code: dlopen (and with it the library's constructors),
 * heimdall_plugin_abi_version and GetName. It runs in a child process of its own (see inspect.ts), so a library
 * that never returns from one of them costs the command a deadline, not a hang.
 *
 *   node probe.js FILE      prints one line of JSON: ProbeResult
 */
import { HeimdallError, Errors } from '../errors.js';
import { HOST_ABI_MAJOR } from '../plugins/abi.js';
import { openLibrary } from '../plugins/loader.js';

export interface ProbeResult {
  abi_version: number | null;
  name: string | null;
  exports: string[];
  problem: { code: string; message: string } | null;
}

function probe(file: string): ProbeResult {
  const result: ProbeResult = { abi_version: null, name: null, exports: [], problem: null };
  try {
    const lib = openLibrary(file);
    result.exports = [...lib.exports()];
    if (result.exports.includes('heimdall_plugin_abi_version')) result.abi_version = lib.abiVersion();
    // Another major version may lay out GetName differently: it is not called then.
    if (result.abi_version !== null && result.abi_version >>> 16 === HOST_ABI_MAJOR && result.exports.includes('GetName')) {
      result.name = lib.getName();
    }
  } catch (err) {
    const e = err instanceof HeimdallError ? err : Errors.INTERNAL(String(err));
    result.problem = { code: e.code, message: e.message };
  }
  return result;
}

const file = process.argv[2];
if (file !== undefined) process.stdout.write(JSON.stringify(probe(file)) + '\n');
