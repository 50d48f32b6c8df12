/**
 * The inline mode: each hook is a synchronous koffi call on the event loop. The fastest there is (a fraction of a
 * microsecond), for small, trusted, pure code: a hook that blocks stalls every request, there is no deadline, and a
 * crash takes the process with it.
 */
import type { CallResult, NativeLibrary } from '../abi.js';
import type { HookCaller } from '../native-plugin.js';

export class InlineCaller implements HookCaller {
  constructor(
    private readonly lib: NativeLibrary,
    /** Whether dlclose is safe after Cleanup (C only). */
    private readonly unloadable: boolean,
  ) {}

  transport(ctx: Buffer, http: Buffer, body: Buffer): CallResult {
    return this.lib.transport(ctx, http, body);
  }

  pre(ctx: Buffer, request: Buffer): CallResult {
    return this.lib.pre(ctx, request);
  }

  post(ctx: Buffer, response: Buffer | null, error: Buffer | null): CallResult {
    return this.lib.post(ctx, response, error);
  }

  chunk(ctx: Buffer, chunk: Buffer): CallResult {
    return this.lib.chunk(ctx, chunk);
  }

  close(): void {
    try {
      this.lib.cleanup();
    } finally {
      if (this.unloadable) this.lib.unload();
    }
  }
}
