/**
 * What a host service answers a plugin: the statuses of native/include/heimdall_plugin.h (ABI 1.2). The plugin sees
 * only the number; the gateway logs the coded error (errors.ts) the first time a plugin meets each refusal.
 */
export const HostStatus = {
  OK: 0,
  NOT_FOUND: 2,
  CONFLICT: 3,
  E_LIMIT: 4,
  E_INVALID: 5,
  E_UNAVAILABLE: 6,
} as const;
export type HostStatus = (typeof HostStatus)[keyof typeof HostStatus];

/** A read: the status, and the value when there is one. */
export interface Read {
  status: HostStatus;
  value?: Buffer;
}

/** A kv_incr: the status and the value (the local estimate when the status is E_UNAVAILABLE). */
export interface Count {
  status: HostStatus;
  value: bigint;
}

export const INT64_MAX = (1n << 63n) - 1n;
export const INT64_MIN = -(1n << 63n);

/** An integer value as the store keeps it (decimal text, as Redis does); undefined when it is not one. */
export function parseInteger(value: Buffer): bigint | undefined {
  const text = value.toString('latin1');
  if (!/^-?[0-9]{1,19}$/.test(text)) return undefined;
  const n = BigInt(text);
  return n > INT64_MAX || n < INT64_MIN ? undefined : n;
}
