/**
 * The koffi boundary: the one module that talks to native code. It binds the ABI v1 symbols of an opened shared
 * object and turns each call into plain JS values: a status and the output bytes (already copied and released
 * through the plugin's heimdall_plugin_free).
 */
import koffi from 'koffi';
import { endianness } from 'node:os';

export const HOST_ABI_MAJOR = 1;
export const HOST_ABI_MINOR = 0;

export const REQUIRED_SYMBOLS = ['heimdall_plugin_abi_version', 'heimdall_plugin_free', 'GetName', 'Cleanup'] as const;
export const OPTIONAL_SYMBOLS = ['Init', 'TransportInterceptor', 'PreHook', 'PostHook', 'StreamChunkHook'] as const;

type Fn = (...args: unknown[]) => unknown;

/** A hook call's outcome: `output` is undefined when the plugin handed nothing back. */
export interface CallResult {
  status: number;
  output: string | undefined;
}


/**
 * Hooks run synchronously on the event loop, one at a time, so one out-slot serves every call. It is a
 * heimdall_buf_t {uint8_t *data; size_t len} that the plugin fills, laid out for this host's word size and byte
 * order.
 */
const WORD = koffi.sizeof('void *');
const LITTLE_ENDIAN = endianness() === 'LE';
const outSlot = Buffer.alloc(2 * WORD);

function readWord(offset: number): bigint {
  if (WORD === 8) return LITTLE_ENDIAN ? outSlot.readBigUInt64LE(offset) : outSlot.readBigUInt64BE(offset);
  return BigInt(LITTLE_ENDIAN ? outSlot.readUInt32LE(offset) : outSlot.readUInt32BE(offset));
}

/**
 * Plugin output is copied out with libc's memcpy into a reused scratch buffer. (koffi.view would be the obvious
 * tool, but its external ArrayBuffers are never released: about 220 bytes leaked per call, and 3x slower.)
 */
const memcpy = koffi.load(null).func('void *memcpy(void *dst, void *src, size_t n)') as Fn;
let scratch = Buffer.allocUnsafe(64 * 1024);

function copyOut(ptr: bigint, len: number): string {
  if (len > scratch.length) scratch = Buffer.allocUnsafe(Math.max(len, scratch.length * 2));
  memcpy(scratch, ptr, len);
  return scratch.toString('utf8', 0, len);
}

function isZeroWord(offset: number): boolean {
  for (let i = offset; i < offset + WORD; i++) if (outSlot[i] !== 0) return false;
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

  /** dlopen, and bind every ABI symbol the library exports. Throws koffi's error (dlerror's text) when the
   * dynamic loader refuses the file, or when heimdall_plugin_free is missing. */
  constructor(readonly file: string) {
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
  }

  /** Which ABI symbols the library exports. */
  exports(): Set<string> {
    const all: [string, Fn | undefined][] = [
      ['heimdall_plugin_abi_version', this.abiVersionFn], ['heimdall_plugin_free', this.freeFn],
      ['GetName', this.getNameFn], ['Cleanup', this.cleanupFn], ['Init', this.initFn],
      ['TransportInterceptor', this.transportFn], ['PreHook', this.preFn], ['PostHook', this.postFn],
      ['StreamChunkHook', this.chunkFn],
    ];
    return new Set(all.filter(([, fn]) => fn !== undefined).map(([name]) => name));
  }

  abiVersion(): number {
    return (this.abiVersionFn!() as number) >>> 0;
  }

  getName(): string | null {
    return this.getNameFn!() as string | null;
  }

  cleanup(): void {
    this.cleanupFn!();
  }

  init(config: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.initFn!(config, config.length, outSlot) as number);
  }

  transport(ctx: Buffer, http: Buffer, body: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.transportFn!(ctx, ctx.length, http, http.length, body, body.length, outSlot) as number);
  }

  pre(ctx: Buffer, request: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.preFn!(ctx, ctx.length, request, request.length, outSlot) as number);
  }

  post(ctx: Buffer, response: Buffer | null, error: Buffer | null): CallResult {
    outSlot.fill(0);
    const status = this.postFn!(ctx, ctx.length, response, response?.length ?? 0, error, error?.length ?? 0, outSlot);
    return this.result(status as number);
  }

  chunk(ctx: Buffer, chunk: Buffer): CallResult {
    outSlot.fill(0);
    return this.result(this.chunkFn!(ctx, ctx.length, chunk, chunk.length, outSlot) as number);
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

  /** Copy what the plugin handed back, then release it through the plugin's own free function. */
  private result(status: number): CallResult {
    // Nothing handed back: the fast path, no allocation at all.
    if (isZeroWord(0)) return { status, output: undefined };
    const ptr = readWord(0);
    const len = Number(readWord(WORD));
    try {
      return { status, output: len === 0 ? '' : copyOut(ptr, len) };
    } finally {
      this.freeFn(ptr, len);
    }
  }
}
