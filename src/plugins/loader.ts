/**
 * Loading one plugin, checks first: no plugin code runs until the file is known to be a shared object for this
 * platform and architecture that exports the required ABI symbols. Then dlopen, the ABI version check (the first
 * plugin function called), GetName and Init, in this process (inline and threaded modes) or in the plugin's own
 * child process (isolated). Every refusal is a catalogued error naming the file, the cause and the fix.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import nodePath from 'node:path';
import type { Logger } from 'pino';
import type { PluginConfig } from '../config/schema.js';
import { Errors, HeimdallError } from '../errors.js';
import { DEFAULT_MAX_OUTPUT_BYTES, HOST_ABI_MAJOR, HOST_ABI_MINOR, NativeLibrary, REQUIRED_SYMBOLS, type OutputLimits } from './abi.js';
import { checkCompatible, inspectBinary, type BinaryInfo } from './inspect.js';
import type { HostInfo } from './isolated/host-process.js';
import { InlineCaller } from './modes/inline.js';
import { IsolatedCaller } from './modes/isolated.js';
import { ThreadedCaller } from './modes/threaded.js';
import { threadBudget } from './modes/threads.js';
import { NativePlugin } from './native-plugin.js';
import type { ExecutionMode, HookSet, Json, Language, Plugin } from './plugin.js';

/** How a plugin's hooks run: its entry's mode settings, and the process-wide thread count. */
export type Execution = Pick<PluginConfig, 'mode' | 'timeout_ms' | 'concurrency' | 'max_queue' | 'max_memory_mb' | 'max_output_bytes'> & {
  /** server.plugin_threads */
  plugin_threads: number;
};

export const INLINE: Execution = {
  mode: 'inline', timeout_ms: 2000, max_queue: 1024, max_memory_mb: 512, max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES, plugin_threads: 16,
};

export interface LoadOptions {
  /** Resolved (env references replaced) plugin config, handed to Init. */
  config: Record<string, Json | undefined> | Record<string, unknown>;
  /** Called for conditions that do not stop the load (a newer minor ABI version). */
  warn?: (message: string) => void;
  /** Names already registered: a plugin with one of them is refused before its Init runs. */
  takenNames?: ReadonlySet<string>;
  /** The file as the user knows it, when `file` is a private copy of it: messages and status name this one. */
  source?: string;
  /** Where and how the hooks run; inline when not given. */
  execution?: Execution;
  /** Where threaded and isolated plugins report (a hung call, the child's output and exits). */
  log?: Logger;
}

/** Hook calls still running when a threaded plugin is unloaded get this long before Cleanup is left to them. */
const CLOSE_TIMEOUT_MS = 5000;
/** What the isolated host accepts in one call: hook inputs are bounded by the body limits long before this. */
const MAX_INPUT_BYTES = 1024 * 1024 * 1024;

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
  if (missing.length > 0) throw Errors.PLUGIN_SYMBOL(file, missing, binary.language);
  return binary;
}

/** dlopen, with the loader's refusal turned into a catalogued error. */
export function openLibrary(path: string, file = path, limits?: OutputLimits): NativeLibrary {
  try {
    return new NativeLibrary(path, limits);
  } catch (err) {
    throw Errors.PLUGIN_OPEN(file, (err as Error).message);
  }
}

/** The ABI version check: the first call into a plugin. Returns the version. */
export function checkAbiVersion(lib: NativeLibrary, file: string): number {
  const version = lib.abiVersion();
  checkMajor(version, file);
  return version;
}

/** A newer minor version loads with a warning; another major version is refused (checkAbiVersion). */
function checkMinor(version: number, file: string, warn?: (message: string) => void): void {
  const warning = newerMinorWarning(version, file);
  if (warning !== undefined) warn?.(warning);
}

/** The warning for a plugin built for a newer minor ABI version than the gateway's, if it is. */
export function newerMinorWarning(version: number, file: string): string | undefined {
  if (version >>> 16 !== HOST_ABI_MAJOR || (version & 0xffff) <= HOST_ABI_MINOR) return undefined;
  return (
    `plugin ${file} was built for ABI ${formatAbiVersion(version)}, newer than this gateway's ` +
    `${HOST_ABI_MAJOR}.${HOST_ABI_MINOR}; exports this gateway does not know are not called`
  );
}

function checkMajor(version: number, file: string): void {
  if (version >>> 16 !== HOST_ABI_MAJOR) {
    throw Errors.PLUGIN_ABI(file, formatAbiVersion(version), formatAbiVersion((HOST_ABI_MAJOR << 16) | HOST_ABI_MINOR));
  }
}

/** GetName's answer must be a usable, unique identifier. */
function checkName(name: string | null, file: string, takenNames?: ReadonlySet<string>): string {
  if (name === null || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw Errors.PLUGIN_NAME(file, `GetName returned ${JSON.stringify(name)}; it must return 1-64 characters of letters, digits, ".", "_" or "-"`);
  }
  if (takenNames?.has(name)) {
    throw Errors.PLUGIN_NAME(file, `another plugin is already registered as "${name}"; plugin names must be unique`);
  }
  return name;
}

function hooksOf(exported: ReadonlySet<string>): HookSet {
  return {
    transport: exported.has('TransportInterceptor'),
    pre: exported.has('PreHook'),
    post: exported.has('PostHook'),
    chunk: exported.has('StreamChunkHook'),
  };
}

/** Loads, checks and initialises the plugin in the mode its entry asks for. */
export async function loadPlugin(path: string, options: LoadOptions): Promise<Plugin> {
  const file = options.source ?? path;
  const binary = checkFile(path, file);
  const execution = options.execution ?? INLINE;
  if (execution.mode === 'isolated') return loadIsolated(path, file, binary, execution, options);
  return loadInProcess(path, file, binary, execution, options);
}

function loadInProcess(path: string, file: string, binary: BinaryInfo, execution: Execution, options: LoadOptions): Plugin {
  const limits: OutputLimits = { maxOutputBytes: execution.max_output_bytes };
  const lib = openLibrary(path, file, limits);
  const unloadable = canUnload(binary.language);
  try {
    const version = checkAbiVersion(lib, file);
    checkMinor(version, file, options.warn);
    const exported = lib.exports();
    const stillMissing = REQUIRED_SYMBOLS.filter((s) => !exported.has(s));
    if (stillMissing.length > 0) throw Errors.PLUGIN_SYMBOL(file, stillMissing, binary.language);
    const name = checkName(lib.getName(), file, options.takenNames);
    const declared = lib.concurrency();

    if (exported.has('Init')) {
      const result = lib.init(Buffer.from(JSON.stringify(options.config)));
      if (result.status !== 0) {
        throw Errors.PLUGIN_INIT(name, file, result.output || result.refused || `status ${result.status} with no message`);
      }
    }

    const mode: ExecutionMode = execution.mode;
    const concurrency = mode === 'threaded' ? Math.min(declared, execution.concurrency ?? declared) : 1;
    const info = { name, file, abiVersion: formatAbiVersion(version), language: binary.language, hooks: hooksOf(exported), mode, concurrency };
    if (mode === 'inline') return new NativePlugin(info, new InlineCaller(lib, unloadable));
    const log = options.log;
    const budget = threadBudget(execution.plugin_threads, (m) => (log ? log.warn(m) : options.warn?.(m)));
    info.concurrency = Math.min(concurrency, budget.size);
    const caller = new ThreadedCaller(lib, budget, {
      name,
      concurrency: info.concurrency,
      timeoutMs: execution.timeout_ms,
      maxQueue: execution.max_queue,
      closeTimeoutMs: CLOSE_TIMEOUT_MS,
      unloadable,
      log: log ?? silentLogger,
    });
    return new NativePlugin(info, caller);
  } catch (err) {
    // Init did not succeed, so Cleanup must not run; just let go of the library where that is safe.
    if (unloadable) lib.unload();
    throw err;
  }
}

async function loadIsolated(path: string, file: string, binary: BinaryInfo, execution: Execution, options: LoadOptions): Promise<Plugin> {
  let version = 0;
  // Loaded on first use: a gateway without isolated plugins never reads it.
  const { HostProcess } = await import('./isolated/host-process.js');
  const host = await HostProcess.start(
    {
      file: path,
      label: file,
      log: options.log ?? silentLogger,
      config: Buffer.from(JSON.stringify(options.config)),
      timeoutMs: execution.timeout_ms,
      maxMemoryMb: execution.max_memory_mb,
      maxOutputBytes: execution.max_output_bytes,
      maxInputBytes: MAX_INPUT_BYTES,
      maxQueue: execution.max_queue,
      restart: { initialDelayMs: 100, maxDelayMs: 5000, maxRestarts: 5, windowMs: 60_000 },
    },
    (info: HostInfo) => {
      checkMajor(info.abiVersion, file);
      const missing = REQUIRED_SYMBOLS.filter((s) => !info.exports.has(s));
      if (missing.length > 0) throw Errors.PLUGIN_SYMBOL(file, missing, binary.language);
      if (version === 0) {
        checkMinor(info.abiVersion, file, options.warn);
        checkName(info.name, file, options.takenNames);
      }
      version = info.abiVersion;
    },
  );
  const info = {
    name: host.info.name,
    file,
    abiVersion: formatAbiVersion(host.info.abiVersion),
    language: binary.language,
    hooks: hooksOf(host.info.exports),
    mode: 'isolated' as const,
    concurrency: 1,
  };
  return new NativePlugin(info, new IsolatedCaller(host));
}

/** For threaded plugins loaded without a logger (tools, tests): nothing is written. */
const silentLogger = {
  warn: () => {},
  info: () => {},
  error: () => {},
  debug: () => {},
  child: () => silentLogger,
} as unknown as Logger;
