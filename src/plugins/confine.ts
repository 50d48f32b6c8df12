/**
 * Opening a plugin file for loading, and, for plugins the admin API added, refusing it unless the file really lies
 * inside the allowed directories.
 *
 * Checking a path and then reading it leaves a window: a symlink re-pointed in between sends the read elsewhere.
 * So the file is opened once, the check asks where that open file really is, and the caller reads (copies and
 * hashes) from the same descriptor: what is checked is what is loaded.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { realFile } from './loader.js';

/** How the real path of an open file is found: Linux asks the kernel; elsewhere two lookups must agree with it. */
export type LocateMethod = 'proc' | 'stat';

export interface OpenedPlugin {
  /** Read from this, then close it. */
  fd: number;
  /** Where the open file really is (set when confinement was checked). */
  real: string | undefined;
}

// Non-blocking, so that a FIFO named as a plugin can't hang the open; it is then refused as not a regular file.
const FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

/**
 * Opens `file` for staging. With `confinedTo`, the open file must lie inside one of those directories (given as
 * real paths) or the load is refused with ADMIN_PATH; without it (config.json's plugins) any file is taken.
 */
export function openPlugin(
  file: string,
  confinedTo?: readonly string[],
  method: LocateMethod = process.platform === 'linux' ? 'proc' : 'stat',
): OpenedPlugin {
  let before: string | undefined;
  let fd: number;
  try {
    if (confinedTo !== undefined && method === 'stat') before = realpathSync(file);
    fd = openSync(file, FLAGS);
  } catch (err) {
    // Nothing was opened; saying 403 for what lies outside keeps the answer the same whether or not it exists.
    if (confinedTo !== undefined && !insideAny(realFile(file), confinedTo)) throw Errors.ADMIN_PATH(file, [...confinedTo]);
    throw Errors.PLUGIN_NOT_FOUND(file, (err as NodeJS.ErrnoException).code ?? String(err));
  }
  try {
    let real: string | undefined;
    if (confinedTo !== undefined) {
      real = locate(fd, file, method, before as string);
      if (real === undefined) throw Errors.ADMIN_PATH(`${file} (it was replaced while being opened)`, [...confinedTo]);
      if (!insideAny(real, confinedTo)) throw Errors.ADMIN_PATH(real === file ? file : `${file} -> ${real}`, [...confinedTo]);
    }
    if (!fstatSync(fd).isFile()) throw Errors.PLUGIN_NOT_FOUND(file, 'not a regular file');
    return { fd, real };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The real path of the open file `fd`, or undefined when that can't be established. */
function locate(fd: number, file: string, method: LocateMethod, before: string | undefined): string | undefined {
  if (method === 'proc') {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // /proc not mounted: fall back to the portable way below.
      before = realFile(file);
    }
  }
  // The path resolved the same before and after the open, and names the very file that was opened.
  try {
    const after = realpathSync(file);
    const opened = fstatSync(fd);
    const named = statSync(after);
    if (after !== before || named.dev !== opened.dev || named.ino !== opened.ino) return undefined;
    return after;
  } catch {
    return undefined;
  }
}

/** Whether `file` is inside one of `dirs`, by whole path segments: /srv/plugins-evil is not inside /srv/plugins. */
export function insideAny(file: string, dirs: readonly string[]): boolean {
  return dirs.some((dir) => {
    const relative = path.relative(dir, file);
    return relative !== '' && !relative.startsWith(`..${path.sep}`) && relative !== '..' && !path.isAbsolute(relative);
  });
}
