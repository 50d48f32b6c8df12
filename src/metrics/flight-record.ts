/**
 * A flight record: which plugin hooks a worker of the pool is running right now, kept where its primary can read it
 * after the worker is gone. A worker that dies of a segfault in a plugin, or is killed by the watchdog while a hook
 * spins, can say nothing itself; its primary then reads this record and logs the plugin and hook that were running,
 * and for how long (docs/workers.md).
 *
 * The record is one page of a file the primary creates for each worker, mapped shared into the worker (mmap through
 * libc, viewed as typed arrays): a hook call adds one to its cell as it starts and takes one away as it ends, plain
 * memory writes of a few nanoseconds, with no system call. The kernel keeps the page when the process dies, however
 * it dies.
 *
 * Layout (little-endian): a 64-byte header (magic, version, cells used, the worker's clock origin in ms since the
 * epoch as a float64 at byte 16), then up to MAX_CELLS cells of 64 bytes: running calls (int32), the time the last
 * one started (float64, ms on the worker's clock, at byte 8), then "plugin\0hook\0" (at most 48 bytes).
 */
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import koffi from 'koffi';

export const FLIGHT_RECORD_BYTES = 4096;
const MAGIC = 0x48464c31; // "HFL1"
const HEADER = 64;
const CELL = 64;
const NAME_AT = 16;
const NAME_BYTES = CELL - NAME_AT;
const MAX_CELLS = (FLIGHT_RECORD_BYTES - HEADER) / CELL;

/** One hook's cell: where a call's start and end are written. */
export interface FlightCell {
  /** Call as a hook starts, with performance.now(). */
  enter(start: number): void;
  /** Call as it ends, however it ends. */
  leave(): void;
}

const NO_CELL: FlightCell = { enter: () => {}, leave: () => {} };

export class FlightRecord {
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  private readonly bytes: Uint8Array;
  private readonly cells = new Map<string, FlightCell>();

  private constructor(buffer: ArrayBuffer) {
    this.ints = new Int32Array(buffer);
    this.floats = new Float64Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.ints[0] = MAGIC;
    this.ints[1] = 1;
    this.ints[2] = 0;
    this.floats[2] = performance.timeOrigin;
  }

  /**
   * The record in `file` (made by the primary, FLIGHT_RECORD_BYTES long), mapped shared; undefined when there is
   * none or it can't be mapped (the pool then reports suspects, not the hook).
   */
  static open(file: string | undefined): FlightRecord | undefined {
    if (file === undefined || file === '') return undefined;
    try {
      const view = mapShared(file);
      return view === undefined ? undefined : new FlightRecord(view);
    } catch {
      return undefined;
    }
  }

  /** The cell for one plugin's hook (the same cell for every instance of the plugin); a no-op when the page is full. */
  cell(plugin: string, hook: string): FlightCell {
    const key = `${plugin}\0${hook}`;
    const known = this.cells.get(key);
    if (known !== undefined) return known;
    const used = this.ints[2] as number;
    const name = Buffer.from(`${key}\0`, 'utf8');
    if (used >= MAX_CELLS || name.length > NAME_BYTES) return NO_CELL;
    const at = HEADER + used * CELL;
    this.bytes.set(name, at + NAME_AT);
    this.ints[2] = used + 1;
    const count = at / 4;
    const started = at / 8 + 1;
    const { ints, floats } = this;
    const cell: FlightCell = {
      enter: (start) => {
        (ints[count] as number)++;
        floats[started] = start;
      },
      leave: () => {
        (ints[count] as number)--;
      },
    };
    this.cells.set(key, cell);
    return cell;
  }
}

/** A hook that was running when the record was read. */
export interface RunningHook {
  plugin: string;
  hook: string;
  /** Calls under way (more than one: a threaded plugin). */
  calls: number;
  /** How long the latest of them had been running when `at` (ms since the epoch). */
  for_ms: number;
}

/** Make a blank record for a worker about to start. */
export function createFlightRecord(file: string): void {
  writeFileSync(file, Buffer.alloc(FLIGHT_RECORD_BYTES), { mode: 0o600 });
}

/** What the record in `file` says was running at `at` (ms since the epoch); [] when it says nothing. */
export function readFlightRecord(file: string, at = Date.now()): RunningHook[] {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch {
    return [];
  }
  if (data.length < FLIGHT_RECORD_BYTES || data.readInt32LE(0) !== MAGIC) return [];
  const used = Math.min(data.readInt32LE(8), MAX_CELLS);
  const origin = data.readDoubleLE(16);
  const running: RunningHook[] = [];
  for (let i = 0; i < used; i++) {
    const base = HEADER + i * CELL;
    const calls = data.readInt32LE(base);
    if (calls <= 0) continue;
    const [plugin = '', hook = ''] = data.subarray(base + NAME_AT, base + CELL).toString('utf8').split('\0');
    running.push({ plugin, hook, calls, for_ms: Math.max(0, Math.round(at - (origin + data.readDoubleLE(base + 8)))) });
  }
  return running;
}

let libc: { mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown } | undefined;

function mapShared(file: string): ArrayBuffer | undefined {
  libc ??= (() => {
    const lib = koffi.load(process.platform === 'darwin' ? 'libSystem.B.dylib' : 'libc.so.6');
    return { mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') };
  })();
  const PROT_READ_WRITE = 0x1 | 0x2;
  const MAP_SHARED = 0x1;
  const fd = openSync(file, 'r+');
  try {
    const pointer = libc.mmap(null, FLIGHT_RECORD_BYTES, PROT_READ_WRITE, MAP_SHARED, fd, 0);
    // MAP_FAILED is (void *)-1. The mapping outlives the descriptor.
    const address = pointer === null ? 0n : koffi.address(pointer);
    if (address === 0n || address === -1n || address === 0xffffffffffffffffn) return undefined;
    return koffi.view(pointer, FLIGHT_RECORD_BYTES);
  } finally {
    closeSync(fd);
  }
}
