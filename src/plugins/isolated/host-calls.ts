/**
 * The isolated mode's host services: the child (native/plugin-host/host.c) relays each call the plugin makes through
 * its host table as a frame on the channel; this answers it from the process's host services, as the inline mode's
 * callbacks do (abi.ts), and the child hands the answer to the plugin.
 */
import type { PluginHost } from '../../host/services.js';
import { HostStatus } from '../../host/status.js';
import { HostFn, type HostCall } from './protocol.js';

export interface HostAnswer {
  status: number;
  num: bigint;
  value?: Buffer;
}

const INVALID: HostAnswer = { status: HostStatus.E_INVALID, num: 0n };

export function serveHostCall(host: PluginHost, call: HostCall): HostAnswer {
  const [a = null, b = null, c = null, d = null] = call.bufs;
  switch (call.fn) {
    case HostFn.LOG:
      if (a !== null) host.log(call.request, Number(call.num), a, Math.max(call.ttl, a.length));
      return { status: HostStatus.OK, num: 0n };
    case HostFn.METRIC_DEFINE: {
      if (a === null || b === null || c === null) return INVALID;
      const buckets = d === null || d.length === 0 ? undefined : Array.from({ length: Math.floor(d.length / 8) }, (_, i) => d.readDoubleLE(i * 8));
      const r = host.metricDefine({ kind: Number(call.num), name: a.toString('utf8'), help: b.toString('utf8'), labels: c.toString('utf8'), buckets });
      return { status: r.status, num: BigInt(r.id) };
    }
    case HostFn.METRIC_RECORD:
      if (a === null) return INVALID;
      return { status: host.metricRecord(Number(call.num), a.toString('utf8'), call.real), num: 0n };
    case HostFn.STATE_GET: {
      if (a === null) return INVALID;
      const r = host.stateGet(call.request, a);
      return { status: r.status, num: 0n, value: r.value };
    }
    case HostFn.STATE_SET:
      if (a === null) return INVALID;
      return { status: host.stateSet(call.request, a, b), num: 0n };
    case HostFn.KV_GET: {
      if (a === null) return INVALID;
      const r = host.kvGet(a);
      return { status: r.status, num: 0n, value: r.value };
    }
    case HostFn.KV_SET:
      if (a === null) return INVALID;
      return { status: host.kvSet(a, b, call.ttl), num: 0n };
    case HostFn.KV_INCR: {
      if (a === null) return INVALID;
      const r = host.kvIncr(a, call.num, call.ttl);
      return { status: r.status, num: r.value };
    }
    case HostFn.KV_CAS:
      if (a === null || c === null) return INVALID;
      return { status: host.kvCas(a, b, c, call.ttl), num: 0n };
    default:
      return INVALID;
  }
}
