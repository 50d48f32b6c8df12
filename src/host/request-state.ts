/**
 * Per-request state (ABI 1.2 state_get / state_set): a small key-value per request and plugin, readable and writable
 * from every hook of the request (the stream chunk hook included), freed when the request ends. Hooks name the
 * request by the handle its context starts with ({"request_handle":17,...}); handles are never reused in a process.
 */
import { HostStatus, type Read } from './status.js';

export interface StateLimits {
  /** Keys per request and plugin. */
  maxKeys: number;
  /** Bytes per request and plugin, keys and values counted. */
  maxBytes: number;
}

interface Live {
  requestId: string;
  /** plugin name -> its state for this request, made on its first write. */
  plugins: Map<string, PluginState> | undefined;
}

interface PluginState {
  values: Map<string, Buffer>;
  bytes: number;
}

/**
 * Requests that are still running, at most this many: a caller that never ends its requests (an embedding that
 * forgets release()) loses its oldest ones' state rather than growing without bound.
 */
const MAX_LIVE = 100_000;

export class RequestStates {
  private next = 1;
  private readonly live = new Map<number, Live>();

  constructor(private readonly limits: StateLimits) {}

  /** A request starts: its handle, for its context. */
  begin(requestId: string): number {
    const handle = this.next++;
    if (this.live.size >= MAX_LIVE) this.live.delete(this.live.keys().next().value as number);
    this.live.set(handle, { requestId, plugins: undefined });
    return handle;
  }

  /** The request is over: its state goes. */
  end(handle: number): void {
    this.live.delete(handle);
  }

  requestId(handle: number): string | undefined {
    return this.live.get(handle)?.requestId;
  }

  get liveCount(): number {
    return this.live.size;
  }

  get(handle: number, plugin: string, key: Buffer): Read {
    const live = this.live.get(handle);
    if (live === undefined) return { status: HostStatus.E_INVALID };
    const value = live.plugins?.get(plugin)?.values.get(key.toString('latin1'));
    return value === undefined ? { status: HostStatus.NOT_FOUND } : { status: HostStatus.OK, value };
  }

  set(handle: number, plugin: string, key: Buffer, value: Buffer | null): HostStatus {
    const live = this.live.get(handle);
    if (live === undefined) return HostStatus.E_INVALID;
    const k = key.toString('latin1');
    let state = live.plugins?.get(plugin);
    if (value === null) {
      const old = state?.values.get(k);
      if (state !== undefined && old !== undefined) {
        state.values.delete(k);
        state.bytes -= k.length + old.length;
      }
      return HostStatus.OK;
    }
    const old = state?.values.get(k);
    const bytes = (state?.bytes ?? 0) - (old === undefined ? 0 : k.length + old.length) + k.length + value.length;
    const keys = (state?.values.size ?? 0) + (old === undefined ? 1 : 0);
    if (bytes > this.limits.maxBytes || keys > this.limits.maxKeys) return HostStatus.E_LIMIT;
    if (state === undefined) {
      state = { values: new Map(), bytes: 0 };
      (live.plugins ??= new Map()).set(plugin, state);
    }
    state.values.set(k, Buffer.from(value));
    state.bytes = bytes;
    return HostStatus.OK;
  }
}
