/**
 * The koffi boundary: the one module that talks to native code. It binds the ABI symbols of an opened shared
 * object and turns each call into plain JS values: a status and the output bytes (already copied and released
 * through the plugin's heimdall_plugin_free). Hooks are called on the event loop (inline), or as koffi asynchronous
 * calls on a worker thread of libuv's pool (threaded; see threads.ts for the pool's size).
 */
import koffi from 'koffi';
import { endianness } from 'node:os';

export const HOST_ABI_MAJOR = 1;
export const HOST_ABI_MINOR = 1;

export const REQUIRED_SYMBOLS = ['heimdall_plugin_abi_version', 'heimdall_plugin_free', 'GetName', 'Cleanup'] as const;
export const OPTIONAL_SYMBOLS = [
  'Init', 'TransportInterceptor', 'PreHook', 'PostHook', 'StreamChunkHook', 'heimdall_plugin_concurrency',
] as const;

type Fn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

/**
 * A hook call's outcome: `output` is undefined when the plugin handed nothing back. `refused` is set when the host
 * would not take the output (larger than the limit): it says why, and `output` is then undefined.
 */
export interface CallResult {
  status: number;
  output: string | undefined;
  refused?: string;
}

/** What the host accepts from a plugin's hook. */
export interface OutputLimits {
  maxOutputBytes: number;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * A heimdall_buf_t {uint8_t *data; size_t len} that the plugin fills, laid out for this host's word size and byte
 * order. Inline hooks run one at a time on the event loop, so one slot serves every one of them; an asynchronous
 * call gets a slot of its own.
 */
/**
 * koffi's asynchronous calls (the threaded mode) get a C stack of the size an ordinary thread would give a plugin
 * (koffi's default is 128 KiB), and koffi accepts as many at once as any thread budget allows. koffi takes settings
 * only before the first library is loaded, which is just below (libc, for memcpy).
 */
export const MAX_ASYNC_CALLS = 1024;
koffi.config({ ...(koffi.config() as Record<string, number>), async_stack_size: 1024 * 1024, max_async_calls: MAX_ASYNC_CALLS });

const WORD = koffi.sizeof('void *');
const LITTLE_ENDIAN = endianness() === 'LE';
const outSlot = Buffer.alloc(2 * WORD);

function readWord(slot: Buffer, offset: number): bigint {
  if (WORD === 8) return LITTLE_ENDIAN ? slot.readBigUInt64LE(offset) : slot.readBigUInt64BE(offset);
  return BigInt(LITTLE_ENDIAN ? slot.readUInt32LE(offset) : slot.readUInt32BE(offset));
}

/**
 * Plugin output is copied out with libc's memcpy into a reused scratch buffer. (koffi.view would be the obvious
 * tool, but its external ArrayBuffers are never released: about 220 bytes leaked per call, and 3x slower.) A large
 * output grows the buffer for that call only: it goes back to its usual size afterwards.
 */
const memcpy = koffi.load(null).func('void *memcpy(void *dst, void *src, size_t n)') as Fn;
const SCRATCH_SIZE = 64 * 1024;
const scratch = Buffer.allocUnsafe(SCRATCH_SIZE);

function copyOut(ptr: bigint, len: number): string {
  const into = len > SCRATCH_SIZE ? Buffer.allocUnsafe(len) : scratch;
  memcpy(into, ptr, len);
  return into.toString('utf8', 0, len);
}

function isZeroWord(slot: Buffer, offset: number): boolean {
  for (let i = offset; i < offset + WORD; i++) if (slot[i] !== 0) return false;
  return true;
}

export class NativeLibrary {
  private readonly lib: ReturnType<typeof koffi.load>;
  private readonly freeFn: Fn;
  private readonly abiVersionFn: Fn | undefined;
  private readonly getNameFn: Fn | undefined;
  private readonly cleanupFn: Fn | undefined;
  private readonly initFn: Fn | undefined;
  private readonly transportFn: Fn | undefined;
  private readonly preFn: Fn | undefined;
  private readonly postFn: Fn | undefined;
  private readonly chunkFn: Fn | undefined;
  private readonly concurrencyFn: Fn | undefined;

  /** dlopen, and bind every ABI symbol the library exports. Throws koffi's error (dlerror's text) when the
   * dynamic loader refuses the file, or when heimdall_plugin_free is missing. */
  constructor(
    readonly file: string,
    private readonly limits: OutputLimits = { maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES },
  ) {
    this.lib = koffi.load(file);
    this.freeFn = this.lib.func('void heimdall_plugin_free(void *data, size_t len)') as Fn;
    this.abiVersionFn = this.bind('uint32_t heimdall_plugin_abi_version(void)');
    this.getNameFn = this.bind('const char *GetName(void)');
    this.cleanupFn = this.bind('void Cleanup(void)');
    this.initFn = this.bind('int32_t Init(void *config, size_t config_len, void *out)');
    this.transportFn = this.bindHook('TransportInterceptor', 'void *http, size_t http_len, void *body, size_t body_len');
    this.preFn = this.bindHook('PreHook', 'void *request, size_t request_len');
    this.postFn = this.bindHook('PostHook', 'void *response, size_t response_len, void *error, size_t error_len');
    this.chunkFn = this.bindHook('StreamChunkHook', 'void *chunk, size_t chunk_len');
    this.concurrencyFn = this.bind('uint32_t heimdall_plugin_concurrency(void)');
  }

  /** Which ABI symbols the library exports. */
  exports(): Set<string> {
    const all: [string, Fn | undefined][] = [
      ['heimdall_plugin_abi_version', this.abiVersionFn], ['heimdall_plugin_free', this.freeFn],
      ['GetName', this.getNameFn], ['Cleanup', this.cleanupFn], ['Init', this.initFn],
      ['TransportInterceptor', this.transportFn], ['PreHook', this.preFn], ['PostHook', this.postFn],
      ['StreamChunkHook', this.chunkFn], ['heimdall_plugin_concurrency', this.concurrencyFn],
    ];
    return new Set(all.filter(([, fn]) => fn !== undefined).map(([name]) => name));
  }

  abiVersion(): number {
    return (this.abiVersionFn!() as number) >>> 0;
  }

  getName(): string | null {
    return this.getNameFn!() as string | null;
  }

  /** What heimdall_plugin_concurrency declares (ABI 1.1): 1 when it is not exported. */
  concurrency(): number {
    if (this.concurrencyFn === undefined) return 1;
    return Math.max(1, (this.concurrencyFn() as number) >>> 0);
  }

  cleanup(): void {
    this.cleanupFn!();
  }

  init(config: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.initFn!(config, config.length, outSlot) as number, outSlot);
  }

  transport(ctx: Buffer, http: Buffer, body: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.transportFn!(ctx, ctx.length, http, http.length, body, body.length, outSlot) as number, outSlot);
  }

  pre(ctx: Buffer, request: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.preFn!(ctx, ctx.length, request, request.length, outSlot) as number, outSlot);
  }

  post(ctx: Buffer, response: Buffer | null, error: Buffer | null): CallResult {
    outSlot.fill(0);
    const status = this.postFn!(ctx, ctx.length, response, response?.length ?? 0, error, error?.length ?? 0, outSlot);
    return this.result(status as number, outSlot);
  }

  chunk(ctx: Buffer, chunk: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.chunkFn!(ctx, ctx.length, chunk, chunk.length, outSlot) as number, outSlot);
  }

  // The same calls on a worker thread. The event loop goes on meanwhile; the output is copied and released back on
  // it, when the call returns. The input buffers are referenced by the call until then.

  transportAsync(ctx: Buffer, http: Buffer, body: Buffer, done: (r: CallResult | Error) => void): void {
    this.callAsync(this.transportFn!, [ctx, ctx.length, http, http.length, body, body.length], done);
  }

  preAsync(ctx: Buffer, request: Buffer, done: (r: CallResult | Error) => void): void {
    this.callAsync(this.preFn!, [ctx, ctx.length, request, request.length], done);
  }

  postAsync(ctx: Buffer, response: Buffer | null, error: Buffer | null, done: (r: CallResult | Error) => void): void {
    this.callAsync(this.postFn!, [ctx, ctx.length, response, response?.length ?? 0, error, error?.length ?? 0], done);
  }

  chunkAsync(ctx: Buffer, chunk: Buffer, done: (r: CallResult | Error) => void): void {
    this.callAsync(this.chunkFn!, [ctx, ctx.length, chunk, chunk.length], done);
  }

  private callAsync(fn: Fn, args: unknown[], done: (r: CallResult | Error) => void): void {
    const slot = Buffer.alloc(2 * WORD);
    fn.async(...args, slot, (err: Error | null, status: number) => {
      if (err) done(err);
      else done(this.result(status, slot));
    });
  }

  /** dlclose. Only for libraries whose runtime allows it (C); calling any function afterwards crashes. */
  unload(): void {
    this.lib.unload();
  }

  private bindHook(name: string, params: string): Fn | undefined {
    return this.bind(`int32_t ${name}(void *ctx, size_t ctx_len, ${params}, void *out)`);
  }

  private bind(prototype: string): Fn | undefined {
    try {
      return this.lib.func(prototype) as Fn;
    } catch {
      return undefined; // koffi throws when the symbol is not exported
    }
  }

  /** Copy what the plugin handed back (unless it is over the limit), then release it through the plugin's free. */
  private result(status: number, slot: Buffer): CallResult {
    // Nothing handed back: the fast path, no allocation at all.
    if (isZeroWord(slot, 0)) return { status, output: undefined };
    const ptr = readWord(slot, 0);
    const len = Number(readWord(slot, WORD));
    try {
      if (len > this.limits.maxOutputBytes) {
        return { status, output: undefined, refused: `handed back ${len} bytes, over the limit of ${this.limits.maxOutputBytes} (max_output_bytes)` };
      }
      return { status, output: len === 0 ? '' : copyOut(ptr, len) };
    } finally {
      this.freeFn(ptr, len);
    }
  }
}
