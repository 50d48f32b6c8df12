/**
 * The frames the gateway and an isolated plugin's host (native/plugin-host/host.c) exchange over their socket. Pure
 * encoding and decoding: host-process.ts does the I/O. All integers are little-endian; body_len counts the bytes
 * after itself.
 *
 *   request   u32 body_len | u8 op | u8 pad[3] | u32 nbufs | u32 len[nbufs] | the buffers, back to back
 *   response  u32 body_len | i32 status | u32 flags | output (body_len - 8 bytes)
 *
 * A buffer's len is ABSENT (0xffffffff, never a real length: frames are far smaller) for a null input, which takes
 * no bytes and reaches the plugin as a NULL pointer, as in the inline mode (PostHook's response or error). Any other
 * len, 0 included, reaches it as a valid, non-NULL pointer.
 */

export const Op = {
  /**
   * Load the plugin; answers its ABI version, name, exports and concurrency as JSON. Plugin code has run in the child
   * by then (constructors run at dlopen), so the answer is only what the plugin says of itself: nothing about the
   * process (its memory, say) is taken from it.
   */
  HELLO: 1,
  /** The gateway accepts the plugin: run Init (config) if exported. From here on Cleanup is owed. */
  INIT: 2,
  TRANSPORT: 3,
  PRE: 4,
  POST: 5,
  CHUNK: 6,
  /** Run Cleanup, answer, exit 0. */
  CLEANUP: 7,
  /** The answer to a host call (ABI 1.2): (i32 status | i64 num) and the value, or ABSENT. */
  HOST_REPLY: 8,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** The len of a null (absent) input buffer. */
export const ABSENT = 0xffffffff;

/** Response flags. */
export const FLAG_OUTPUT = 1;
/** The status is the host's own (a refusal), not the plugin's; the output is the host's message. */
export const FLAG_HOST = 2;

/**
 * A host call from the plugin (ABI 1.2 host services), not a response: the frame's status is the function, and the
 * child waits for the answer (an Op.HOST_REPLY request) unless FLAG_ONEWAY is set too.
 */
export const FLAG_CALL = 4;
export const FLAG_ONEWAY = 8;

/** Host functions, as numbered in a host call frame (native/plugin-host/host.c). */
export const HostFn = {
  LOG: 1,
  METRIC_DEFINE: 2,
  METRIC_RECORD: 3,
  STATE_GET: 4,
  STATE_SET: 5,
  KV_GET: 6,
  KV_SET: 7,
  KV_INCR: 8,
  KV_CAS: 9,
} as const;

/** A host call's arguments: u64 request | i64 num | u64 ttl_ms | f64 real | u32 nbufs | u32 len[nbufs] | buffers. */
export interface HostCall {
  fn: number;
  oneway: boolean;
  request: number;
  num: bigint;
  ttl: number;
  real: number;
  /** null for a NULL buffer (ABSENT). */
  bufs: (Buffer | null)[];
}

const MAX_CALL_BUFS = 4;

export function decodeHostCall(r: Response): HostCall {
  const b = r.body;
  let at = r.offset;
  if (b.length - at < 36) throw new ProtocolError(`a host call of ${b.length - at} bytes, shorter than its arguments`);
  const request = Number(b.readBigUInt64LE(at));
  const num = b.readBigInt64LE(at + 8);
  const ttl = Number(b.readBigUInt64LE(at + 16));
  const real = b.readDoubleLE(at + 24);
  const n = b.readUInt32LE(at + 32);
  at += 36;
  if (n > MAX_CALL_BUFS || b.length - at < 4 * n) throw new ProtocolError(`a host call with ${n} buffers`);
  const lens: number[] = [];
  for (let i = 0; i < n; i++) lens.push(b.readUInt32LE(at + 4 * i));
  at += 4 * n;
  const bufs: (Buffer | null)[] = [];
  for (const len of lens) {
    if (len === ABSENT) {
      bufs.push(null);
      continue;
    }
    if (b.length - at < len) throw new ProtocolError('a host call whose buffer lengths do not add up');
    // Copied: the view is only valid until the next read.
    bufs.push(Buffer.from(b.subarray(at, at + len)));
    at += len;
  }
  if (at !== b.length) throw new ProtocolError('a host call whose buffer lengths do not add up');
  return { fn: r.status, oneway: (r.flags & FLAG_ONEWAY) !== 0, request, num, ttl, real, bufs };
}

export function encodeHostReply(status: number, num: bigint, value: Buffer | undefined): Buffer {
  const result = Buffer.allocUnsafe(12);
  result.writeInt32LE(status, 0);
  result.writeBigInt64LE(BigInt.asIntN(64, num), 4);
  return encodeRequest(Op.HOST_REPLY, [result, value ?? null]);
}

/** The host's own statuses, with FLAG_HOST. */
export const HostStatus = {
  LOAD_FAILED: -1,
  OUTPUT_TOO_LARGE: -2,
  NOT_EXPORTED: -3,
} as const;

/** The HELLO answer when the plugin could not be loaded because required symbols are missing. */
export const MISSING_SYMBOLS = 'missing required symbols: ';

export interface Response {
  status: number;
  flags: number;
  /** The frame's body from the output on (a view, valid until the next read): empty when there is none. */
  body: Buffer;
  /** Where the output starts in `body`. */
  offset: number;
}

/** The bytes a request's body takes: what the host's max_input_bytes bounds. */
export function requestBodySize(bufs: readonly (Buffer | null)[]): number {
  let size = 8 + 4 * bufs.length;
  for (const b of bufs) if (b !== null) size += b.length;
  return size;
}

/** A whole request in one buffer: one allocation (from Node's pool for small ones) and one copy per input. */
export function encodeRequest(op: Op, bufs: readonly (Buffer | null)[]): Buffer {
  const bodySize = requestBodySize(bufs);
  const frame = Buffer.allocUnsafe(4 + bodySize);
  let at = writeHeader(frame, op, bufs, bodySize);
  for (const b of bufs) if (b !== null) at += b.copy(frame, at);
  return frame;
}

/** A request's header alone, for large inputs that are written after it as they are (a writev, no copy). */
export function encodeRequestHeader(op: Op, bufs: readonly (Buffer | null)[]): Buffer {
  const header = Buffer.allocUnsafe(12 + 4 * bufs.length);
  writeHeader(header, op, bufs, requestBodySize(bufs));
  return header;
}

function writeHeader(into: Buffer, op: Op, bufs: readonly (Buffer | null)[], bodySize: number): number {
  into.writeUInt32LE(bodySize, 0);
  into.writeUInt32LE(op, 4); // op, then three zero bytes of padding
  into.writeUInt32LE(bufs.length, 8);
  let at = 12;
  for (const b of bufs) {
    into.writeUInt32LE(b === null ? ABSENT : b.length, at);
    at += 4;
  }
  return at;
}

/** The output a response carries, as text, or undefined when the plugin handed back none. */
export function outputOf(r: Response): string | undefined {
  if ((r.flags & FLAG_OUTPUT) === 0) return undefined;
  return r.body.toString('utf8', r.offset);
}

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/**
 * Cuts the byte stream from the host into responses. A response that arrives whole in one chunk (the usual case) is
 * decoded in place; a larger one is copied once into a buffer of its exact size as its pieces arrive.
 */
export class ResponseReader {
  private readonly header = Buffer.alloc(4);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  /** `maxBody`: the largest body accepted; a larger one is the host misbehaving. */
  constructor(private readonly maxBody: number) {}

  /** Feeds bytes; calls `onResponse` for each complete response. Throws ProtocolError on a bad length. */
  push(chunk: Buffer, onResponse: (r: Response) => void): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.body === undefined) {
        if (this.headerFill === 0 && chunk.length - at >= 4) {
          const len = this.checked(chunk.readUInt32LE(at));
          at += 4;
          if (chunk.length - at >= len) {
            onResponse(decode(chunk.subarray(at, at + len)));
            at += len;
          } else {
            this.body = Buffer.allocUnsafe(len);
            this.bodyFill = 0;
          }
          continue;
        }
        // The length itself is split across chunks.
        const n = chunk.copy(this.header, this.headerFill, at, Math.min(chunk.length, at + 4 - this.headerFill));
        this.headerFill += n;
        at += n;
        if (this.headerFill === 4) {
          this.headerFill = 0;
          this.body = Buffer.allocUnsafe(this.checked(this.header.readUInt32LE(0)));
          this.bodyFill = 0;
        }
        continue;
      }
      const n = chunk.copy(this.body, this.bodyFill, at, Math.min(chunk.length, at + this.body.length - this.bodyFill));
      this.bodyFill += n;
      at += n;
      if (this.bodyFill === this.body.length) {
        const body = this.body;
        this.body = undefined;
        onResponse(decode(body));
      }
    }
  }

  private checked(len: number): number {
    if (len < 8) throw new ProtocolError(`a response of ${len} bytes, shorter than its header`);
    if (len > this.maxBody) throw new ProtocolError(`a response of ${len} bytes, over the limit of ${this.maxBody}`);
    return len;
  }
}

function decode(body: Buffer): Response {
  return { status: body.readInt32LE(0), flags: body.readUInt32LE(4), body, offset: 8 };
}
