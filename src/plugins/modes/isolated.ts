/**
 * The isolated mode: the plugin runs in a child process of its own (native/plugin-host), which loads the same file
 * and serves hook calls over a socket (isolated/host-process.ts). A crash, abort, runaway loop or memory past the cap
 * kills only the child: its calls fail, it is restarted, and the rest of the gateway goes on.
 */
import type { CallResult } from '../abi.js';
import type { HostProcess } from '../isolated/host-process.js';
import type { HookCaller } from '../native-plugin.js';
import type { RuntimeStatus } from '../plugin.js';

export class IsolatedCaller implements HookCaller {
  constructor(private readonly host: HostProcess) {}

  transport(ctx: Buffer, http: Buffer, body: Buffer): Promise<CallResult> {
    return this.host.call('transport', [ctx, http, body]);
  }

  pre(ctx: Buffer, request: Buffer): Promise<CallResult> {
    return this.host.call('pre', [ctx, request]);
  }

  post(ctx: Buffer, response: Buffer | null, error: Buffer | null): Promise<CallResult> {
    return this.host.call('post', [ctx, response, error]);
  }

  chunk(ctx: Buffer, chunk: Buffer): Promise<CallResult> {
    return this.host.call('chunk', [ctx, chunk]);
  }

  close(): Promise<void> {
    return this.host.close();
  }

  runtime(): RuntimeStatus {
    const { restarts, lastExit } = this.host.stats();
    const status: RuntimeStatus = { process: this.host.state(), restarts };
    if (lastExit !== undefined) status.last_exit = { ...lastExit };
    return status;
  }
}
