/**
 * Loading one plugin, checks first: no plugin code runs until the file is known to be a shared object for this
 * platform and architecture that exports the required ABI symbols. Then dlopen, the ABI version check (the first
 * plugin function called), GetName and Init. Every refusal is a catalogued error naming the file, the cause and
 * the fix.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import nodePath from 'node:path';
import { Errors, HeimdallError } from '../errors.js';
import { HOST_ABI_MAJOR, HOST_ABI_MINOR, NativeLibrary, REQUIRED_SYMBOLS } from './abi.js';
import { checkCompatible, inspectBinary, type BinaryInfo } from './inspect.js';
import { NativePlugin } from './native-plugin.js';
import type { Json, Language, Plugin } from './plugin.js';

export interface LoadOptions {
  /** Resolved (env references replaced) plugin config, handed to Init. */
  config: Record<string, Json | undefined> | Record<string, unknown>;
  /** Called for conditions that do not stop the load (a newer minor ABI version). */
  warn?: (message: string) => void;
  /** Names already registered: a plugin with one of them is refused before its Init runs. */
  takenNames?: ReadonlySet<string>;
  /** The file as the user knows it, when `file` is a private copy of it: messages and status name this one. */
  source?: string;
}

export const PLUGIN_EXTENSION = process.platform === 'darwin' ? '.dylib' : '.so';

/** Relative paths resolve against `baseDir`; a path with no extension gets the platform's (.so or .dylib). */
export function resolvePluginPath(file: string, baseDir: string): string {
  const abs = nodePath.resolve(baseDir, file);
  if (nodePath.extname(abs) === '' && !existsSync(abs)) return abs + PLUGIN_EXTENSION;
  return abs;
}

/** The file's real path (symlinks resolved), or the path resolved as given when the file does not exist. */
export function realFile(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return nodePath.resolve(file);
  }
}

export function formatAbiVersion(version: number): string {
  return `${version >>> 16}.${version & 0xffff}`;
}

/** Languages whose runtime can't survive dlclose: Go (golang/go#11100) and Rust (TLS destructors). */
export function canUnload(language: Language): boolean {
  return language === 'c';
}

/**
 * The checks that need no plugin code to run: platform, file, format, architecture, required symbols. `file` is
 * named in errors; `path` is read (they differ when a private copy is loaded).
 */
export function checkFile(path: string, file = path): BinaryInfo {
  if (process.platform !== 'linux' && process.platform !== 'darwin') throw Errors.PLUGIN_PLATFORM(file, process.platform);
  try {
    if (!statSync(path).isFile()) throw Errors.PLUGIN_NOT_FOUND(file, 'not a regular file');
  } catch (err) {
    if (err instanceof HeimdallError) throw err;
    throw Errors.PLUGIN_NOT_FOUND(file, (err as NodeJS.ErrnoException).code ?? String(err));
  }
  const binary = inspectBinary(path);
  checkCompatible(file, binary);
  // Name every missing required symbol before any plugin code runs. A file without a readable symbol table
  // (sstrip'ed) is checked after dlopen instead.
  const missing = binary.hasSymbolTable ? REQUIRED_SYMBOLS.filter((s) => !binary.symbols.has(s)) : [];
  if (missing.length > 0) throw Errors.PLUGIN_SYMBOL(file, missing);
  return binary;
}

/** dlopen, with the loader's refusal turned into a catalogued error. */
export function openLibrary(path: string, file = path): NativeLibrary {
  try {
    return new NativeLibrary(path);
  } catch (err) {
    throw Errors.PLUGIN_OPEN(file, (err as Error).message);
  }
}

/** The ABI version check: the first call into a plugin. Returns the version. */
export function checkAbiVersion(lib: NativeLibrary, file: string): number {
  const version = lib.abiVersion();
  if (version >>> 16 !== HOST_ABI_MAJOR) {
    throw Errors.PLUGIN_ABI(file, formatAbiVersion(version), formatAbiVersion((HOST_ABI_MAJOR << 16) | HOST_ABI_MINOR));
  }
  return version;
}

export function loadPlugin(path: string, options: LoadOptions): Plugin {
  const file = options.source ?? path;
  const binary = checkFile(path, file);
  const lib = openLibrary(path, file);
  const unloadable = canUnload(binary.language);
  try {
    const version = checkAbiVersion(lib, file);
    if ((version & 0xffff) > HOST_ABI_MINOR) {
      options.warn?.(
        `plugin ${file} was built for ABI ${formatAbiVersion(version)}, newer than this gateway's ` +
          `${HOST_ABI_MAJOR}.${HOST_ABI_MINOR}; exports this gateway does not know are not called`,
      );
    }
    const exported = lib.exports();
    const stillMissing = REQUIRED_SYMBOLS.filter((s) => !exported.has(s));
    if (stillMissing.length > 0) throw Errors.PLUGIN_SYMBOL(file, stillMissing);

    const name = lib.getName();
    if (name === null || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
      throw Errors.PLUGIN_NAME(file, `GetName returned ${JSON.stringify(name)}; it must return 1-64 characters of letters, digits, ".", "_" or "-"`);
    }

    if (options.takenNames?.has(name)) {
      throw Errors.PLUGIN_NAME(file, `another plugin is already registered as "${name}"; plugin names must be unique`);
    }

    if (exported.has('Init')) {
      const result = lib.init(Buffer.from(JSON.stringify(options.config)));
      if (result.status !== 0) {
        throw Errors.PLUGIN_INIT(name, file, result.output || `status ${result.status} with no message`);
      }
    }

    return new NativePlugin(
      {
        name,
        file,
        abiVersion: formatAbiVersion(version),
        language: binary.language,
        hooks: {
          transport: exported.has('TransportInterceptor'),
          pre: exported.has('PreHook'),
          post: exported.has('PostHook'),
          chunk: exported.has('StreamChunkHook'),
        },
      },
      lib,
      unloadable,
    );
  } catch (err) {
    // Init did not succeed, so Cleanup must not run; just let go of the library where that is safe.
    if (unloadable) lib.unload();
    throw err;
  }
}
