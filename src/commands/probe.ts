/**
 * The part of `heimdall plugin inspect` that runs plugin code: dlopen (and with it the library's constructors),
 * heimdall_plugin_abi_version and GetName. It runs in a child process of its own (see inspect.ts), so a library
 * that never returns from one of them costs the command a deadline, not a hang.
 *
 *   node probe.js FILE      prints one line of JSON: ProbeResult
 */
// Only the koffi boundary and the catalogue: the child starts in a fraction of the time the loader's imports take.
import { Errors, HeimdallError } from '../errors.js';
import { HOST_ABI_MAJOR, NativeLibrary } from '../plugins/abi.js';

export interface ProbeResult {
  abi_version: number | null;
  name: string | null;
  exports: string[];
  problem: { code: string; message: string } | null;
}

function probe(file: string): ProbeResult {
  const result: ProbeResult = { abi_version: null, name: null, exports: [], problem: null };
  try {
    let lib: NativeLibrary;
    try {
      lib = new NativeLibrary(file);
    } catch (err) {
      throw Errors.PLUGIN_OPEN(file, (err as Error).message); // as the loader's openLibrary words it
    }
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
