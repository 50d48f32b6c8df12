/**
 * The koffi boundary: the one module that talks to native code. It binds the ABI symbols of an opened shared
 * object and turns each call into plain JS values: a status and the output bytes (already copied and released
 * through the plugin's heimdall_plugin_free). Hooks are called on the event loop (inline), or as koffi asynchronous
 * calls on a worker thread of libuv's pool (threaded; see threads.ts for the pool's size).
 */
import koffi from 'koffi';
import { endianness } from 'node:os';
import type { PluginHost } from '../host/services.js';
import { HostStatus } from '../host/status.js';

export const HOST_ABI_MAJOR = 1;
export const HOST_ABI_MINOR = 2;

export const REQUIRED_SYMBOLS = ['heimdall_plugin_abi_version', 'heimdall_plugin_free', 'GetName', 'Cleanup'] as const;
export const OPTIONAL_SYMBOLS = [
  'Init', 'TransportInterceptor', 'PreHook', 'PostHook', 'StreamChunkHook', 'heimdall_plugin_concurrency',
  'heimdall_plugin_set_host',
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

/**
 * Where a plugin's host services come from: set by native-plugin.ts to the process's services. Not imported here, so
 * that what only opens a library (the inspector's probe) loads nothing more than this boundary.
 */
let hostFor: ((plugin: string) => PluginHost) | undefined;

export function useHostServices(provider: (plugin: string) => PluginHost): void {
  hostFor = provider;
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
  private readonly setHostFn: Fn | undefined;
  /** The host table handed to the plugin (ABI 1.2), kept alive until Cleanup has returned. */
  private hostTable: HostTable | undefined;

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
    this.setHostFn = this.bind('void heimdall_plugin_set_host(void *host)');
  }

  /** Which ABI symbols the library exports. */
  exports(): Set<string> {
    const all: [string, Fn | undefined][] = [
      ['heimdall_plugin_abi_version', this.abiVersionFn], ['heimdall_plugin_free', this.freeFn],
      ['GetName', this.getNameFn], ['Cleanup', this.cleanupFn], ['Init', this.initFn],
      ['TransportInterceptor', this.transportFn], ['PreHook', this.preFn], ['PostHook', this.postFn],
      ['StreamChunkHook', this.chunkFn], ['heimdall_plugin_concurrency', this.concurrencyFn],
      ['heimdall_plugin_set_host', this.setHostFn],
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
    try {
      this.cleanupFn!();
    } finally {
      // The table is valid until Cleanup returns (the header's rule), and not a moment longer.
      this.hostTable?.release();
      this.hostTable = undefined;
    }
  }

  /**
   * Init, after handing the plugin its host services (ABI 1.2) when it exports heimdall_plugin_set_host: the
   * process's services (useHostServices), scoped to the plugin's name.
   */
  init(config: Buffer): CallResult {
    if (this.setHostFn !== undefined && this.hostTable === undefined) {
      const name = this.getName();
      const host = name === null ? undefined : hostFor?.(name);
      if (host !== undefined) {
        this.hostTable = new HostTable(host);
        this.setHostFn(this.hostTable.table);
      }
    }
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

// ---- Host services (ABI 1.2) ------------------------------------------------------------------------------------
//
// heimdall_host_t is filled with koffi callbacks, one set per loaded plugin, bound to its PluginHost. An inline
// plugin calls them on the event loop, synchronously. A threaded plugin calls them from its worker thread: koffi
// queues the call to the event loop and the thread waits for the answer (koffi's documented behaviour for a
// callback called from another thread), which the loop gives as soon as it is free. The callbacks never throw into
// koffi (which would answer 0, HEIMDALL_OK): a failure answers HEIMDALL_E_INVALID.

const LogFn = koffi.proto('void heimdall_host_log_fn(uint64_t request, int32_t level, void *msg, size_t len)');
const MetricDefineFn = koffi.proto(
  'int32_t heimdall_host_metric_define_fn(int32_t kind, void *name, size_t name_len, void *help, size_t help_len, ' +
    'void *labels, size_t labels_len, void *buckets, size_t buckets_len, void *id)',
);
const MetricRecordFn = koffi.proto('int32_t heimdall_host_metric_record_fn(uint32_t id, void *values, size_t values_len, double value)');
const StateGetFn = koffi.proto(
  'int32_t heimdall_host_state_get_fn(uint64_t request, void *key, size_t key_len, void *value, size_t cap, void *value_len)',
);
const StateSetFn = koffi.proto('int32_t heimdall_host_state_set_fn(uint64_t request, void *key, size_t key_len, void *value, size_t value_len)');
const KvGetFn = koffi.proto('int32_t heimdall_host_kv_get_fn(void *key, size_t key_len, void *value, size_t cap, void *value_len)');
const KvSetFn = koffi.proto('int32_t heimdall_host_kv_set_fn(void *key, size_t key_len, void *value, size_t value_len, uint64_t ttl_ms)');
const KvIncrFn = koffi.proto('int32_t heimdall_host_kv_incr_fn(void *key, size_t key_len, int64_t delta, uint64_t ttl_ms, void *value)');
const KvCasFn = koffi.proto(
  'int32_t heimdall_host_kv_cas_fn(void *key, size_t key_len, void *expected, size_t expected_len, void *value, ' +
    'size_t value_len, uint64_t ttl_ms)',
);

/** The members of heimdall_host_t after size and abi_version, in order. */
const HOST_FUNCTIONS = 9;
export const HOST_TABLE_SIZE = 8 + HOST_FUNCTIONS * WORD;

type Ptr = bigint | null;
/** koffi hands pointers to callbacks as bigints, 64-bit integers as numbers when they fit. */
type Int = number | bigint;

/** Too large to be a length: a read of this many bytes would be a plugin passing garbage. */
const MAX_INPUT = 64 * 1024 * 1024;
const word = Buffer.alloc(8);

function input(ptr: Ptr, len: Int): Buffer | null {
  const n = Number(len);
  if (n === 0) return Buffer.alloc(0);
  if (ptr === null || n > MAX_INPUT) return null;
  const into = Buffer.allocUnsafe(n);
  memcpy(into, ptr, n);
  return into;
}

function writeSize(ptr: Ptr, value: number): void {
  if (ptr === null) return;
  if (WORD === 8) word.writeBigUInt64LE(BigInt(value));
  else word.writeUInt32LE(value);
  if (!LITTLE_ENDIAN) word.subarray(0, WORD).reverse();
  memcpy(ptr, word, WORD);
}

/** A read's answer into the plugin's (value, cap) buffer and its *value_len. */
function answer(r: { status: number; value?: Buffer }, out: Ptr, cap: Int, outLen: Ptr): number {
  if (outLen === null || (out === null && Number(cap) > 0)) return HostStatus.E_INVALID;
  if (r.value !== undefined) {
    const n = Math.min(Number(cap), r.value.length);
    if (n > 0) memcpy(out, r.value, n);
    writeSize(outLen, r.value.length);
  } else {
    writeSize(outLen, 0);
  }
  return r.status;
}

function guarded<A extends unknown[]>(host: PluginHost, what: string, fn: (...args: A) => number): (...args: A) => number {
  return (...args: A) => {
    try {
      return fn(...args);
    } catch (err) {
      host.failed(what, err);
      return HostStatus.E_INVALID;
    }
  };
}

/** One plugin's heimdall_host_t: a buffer the plugin keeps a pointer to, and the callbacks it points at. */
export class HostTable {
  readonly table = Buffer.alloc(HOST_TABLE_SIZE);
  private readonly callbacks: bigint[] = [];

  constructor(host: PluginHost) {
    const max = host.limits;
    const fns: [unknown, ReturnType<typeof koffi.proto>][] = [
      [(request: Int, level: number, msg: Ptr, len: Int) => {
        try {
          if (!host.logs(level)) return; // below the logger's level: not even copied
          const n = Number(len);
          const text = input(msg, Math.min(n, max.logBytes));
          if (text !== null) host.log(Number(request), level, text, n);
        } catch (err) {
          host.failed('log', err);
        }
      }, LogFn],
      [guarded(host, 'metric_define', (kind: number, name: Ptr, nameLen: Int, help: Ptr, helpLen: Int, labels: Ptr, labelsLen: Int,
        buckets: Ptr, bucketsLen: Int, id: Ptr) => {
        const n = Number(bucketsLen);
        if (id === null || Number(nameLen) > 64 || Number(labelsLen) > 1024 || Number(helpLen) > 4096 || n > 64) return HostStatus.E_LIMIT;
        const nameBuf = input(name, nameLen);
        const helpBuf = input(help, helpLen);
        const labelsBuf = input(labels, labelsLen);
        const bucketsBuf = n === 0 ? undefined : input(buckets, n * 8);
        if (nameBuf === null || helpBuf === null || labelsBuf === null || bucketsBuf === null) return HostStatus.E_INVALID;
        const bounds = bucketsBuf === undefined ? undefined : Array.from({ length: n }, (_, i) => LITTLE_ENDIAN ? bucketsBuf.readDoubleLE(i * 8) : bucketsBuf.readDoubleBE(i * 8));
        const r = host.metricDefine({ kind, name: nameBuf.toString('utf8'), help: helpBuf.toString('utf8'), labels: labelsBuf.toString('utf8'), buckets: bounds });
        if (r.status === HostStatus.OK) {
          if (LITTLE_ENDIAN) word.writeUInt32LE(r.id);
          else word.writeUInt32BE(r.id);
          memcpy(id, word, 4);
        }
        return r.status;
      }), MetricDefineFn],
      [guarded(host, 'metric_record', (id: number, values: Ptr, valuesLen: Int, value: number) => {
        if (Number(valuesLen) > 8 * 1024) return HostStatus.E_LIMIT;
        const v = input(values, valuesLen);
        if (v === null) return HostStatus.E_INVALID;
        return host.metricRecord(id, v.toString('utf8'), value);
      }), MetricRecordFn],
      [guarded(host, 'state_get', (request: Int, key: Ptr, keyLen: Int, value: Ptr, cap: Int, valueLen: Ptr) => {
        if (Number(keyLen) > max.stateBytes) return answer({ status: HostStatus.NOT_FOUND }, value, cap, valueLen);
        const k = input(key, keyLen);
        if (k === null) return HostStatus.E_INVALID;
        return answer(host.stateGet(Number(request), k), value, cap, valueLen);
      }), StateGetFn],
      [guarded(host, 'state_set', (request: Int, key: Ptr, keyLen: Int, value: Ptr, valueLen: Int) => {
        if (Number(keyLen) + Number(valueLen) > max.stateBytes) return HostStatus.E_LIMIT;
        const k = input(key, keyLen);
        const v = value === null ? null : input(value, valueLen);
        if (k === null || (value !== null && v === null)) return HostStatus.E_INVALID;
        return host.stateSet(Number(request), k, v);
      }), StateSetFn],
      [guarded(host, 'kv_get', (key: Ptr, keyLen: Int, value: Ptr, cap: Int, valueLen: Ptr) => {
        if (Number(keyLen) > max.keyBytes) return HostStatus.E_LIMIT;
        const k = input(key, keyLen);
        if (k === null) return HostStatus.E_INVALID;
        return answer(host.kvGet(k), value, cap, valueLen);
      }), KvGetFn],
      [guarded(host, 'kv_set', (key: Ptr, keyLen: Int, value: Ptr, valueLen: Int, ttl: Int) => {
        if (Number(keyLen) > max.keyBytes || Number(valueLen) > max.valueBytes) return HostStatus.E_LIMIT;
        const k = input(key, keyLen);
        const v = value === null ? null : input(value, valueLen);
        if (k === null || (value !== null && v === null)) return HostStatus.E_INVALID;
        return host.kvSet(k, v, Number(ttl));
      }), KvSetFn],
      [guarded(host, 'kv_incr', (key: Ptr, keyLen: Int, delta: Int, ttl: Int, out: Ptr) => {
        if (Number(keyLen) > max.keyBytes) return HostStatus.E_LIMIT;
        const k = input(key, keyLen);
        if (k === null || out === null) return HostStatus.E_INVALID;
        const r = host.kvIncr(k, BigInt(delta), Number(ttl));
        if (LITTLE_ENDIAN) word.writeBigInt64LE(r.value);
        else word.writeBigInt64BE(r.value);
        memcpy(out, word, 8);
        return r.status;
      }), KvIncrFn],
      [guarded(host, 'kv_cas', (key: Ptr, keyLen: Int, expected: Ptr, expectedLen: Int, value: Ptr, valueLen: Int, ttl: Int) => {
        if (Number(keyLen) > max.keyBytes || Number(valueLen) > max.valueBytes) return HostStatus.E_LIMIT;
        const k = input(key, keyLen);
        const e = expected === null ? null : input(expected, expectedLen);
        const v = input(value, valueLen);
        if (k === null || v === null || (expected !== null && e === null)) return HostStatus.E_INVALID;
        return host.kvCas(k, e, v, Number(ttl));
      }), KvCasFn],
    ];
    const t = this.table;
    if (LITTLE_ENDIAN) {
      t.writeUInt32LE(HOST_TABLE_SIZE, 0);
      t.writeUInt32LE((HOST_ABI_MAJOR << 16) | HOST_ABI_MINOR, 4);
    } else {
      t.writeUInt32BE(HOST_TABLE_SIZE, 0);
      t.writeUInt32BE((HOST_ABI_MAJOR << 16) | HOST_ABI_MINOR, 4);
    }
    fns.forEach(([fn, proto], i) => {
      const ptr = koffi.register(fn as (...args: unknown[]) => unknown, koffi.pointer(proto));
      this.callbacks.push(ptr);
      const at = 8 + i * WORD;
      if (WORD === 8) {
        if (LITTLE_ENDIAN) t.writeBigUInt64LE(ptr, at);
        else t.writeBigUInt64BE(ptr, at);
      } else if (LITTLE_ENDIAN) {
        t.writeUInt32LE(Number(ptr), at);
      } else {
        t.writeUInt32BE(Number(ptr), at);
      }
    });
  }

  /** After Cleanup: the callbacks go (a call through them afterwards would be the plugin's bug, and fatal). */
  release(): void {
    for (const ptr of this.callbacks.splice(0)) koffi.unregister(ptr);
    this.table.fill(0);
  }
}
