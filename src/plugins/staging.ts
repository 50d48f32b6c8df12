/**
 * Where reloaded plugin code is loaded from. dlopen caches libraries by path (and inode): asking it for the same
 * file again hands back the instance already loaded, old globals and all. So each reload loads a private copy at a
 * unique, content-addressed path, and the file a build writes is never the file the gateway has mapped.
 *
 * The source is opened once, and the copy and its hash are made from that open file: for a plugin confined to
 * directories (added through the admin API), the check is made on that same open file (confine.ts), so no swap of
 * the path between check and copy can put other bytes in the copy.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openPlugin } from './confine.js';

export interface StagedFile {
  /** The private copy to dlopen. */
  file: string;
  sha256: string;
}

export class Staging {
  private dir: string | undefined;
  private seq = 0;

  /**
   * Copy `source` to a new unique path named after its content. With `confinedTo` (real directory paths), the file
   * opened must really be inside one of them, or HEIMDALL_ERR_ADMIN_PATH is thrown and nothing is copied.
   */
  stage(source: string, name: string, confinedTo?: readonly string[]): StagedFile {
    const { fd } = openPlugin(source, confinedTo);
    let bytes: Buffer;
    try {
      bytes = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    this.dir ??= mkdtempSync(path.join(tmpdir(), 'heimdall-plugins-'));
    this.seq += 1;
    const file = path.join(this.dir, `${name}-${sha256.slice(0, 12)}-${this.seq}${path.extname(source)}`);
    writeFileSync(file, bytes, { flag: 'wx', mode: 0o700 });
    return { file, sha256 };
  }

  /** Delete a staged copy once its library is unloaded (mapped copies of Go/Rust plugins stay). */
  discard(file: string): void {
    if (this.dir !== undefined && path.dirname(file) === this.dir) {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    }
  }

  /** Remove the staging directory (at shutdown, after every plugin is closed). */
  dispose(): void {
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
