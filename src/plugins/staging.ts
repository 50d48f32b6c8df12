/**
 * Where reloaded plugin code is loaded from. dlopen caches libraries by path (and inode): asking it for the same
 * file again hands back the instance already loaded, old globals and all. So each reload loads a private copy at a
 * unique, content-addressed path, and the file a build writes is never the file the gateway has mapped.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface StagedFile {
  /** The private copy to dlopen. */
  file: string;
  sha256: string;
}

export class Staging {
  private dir: string | undefined;
  private seq = 0;

  /** Copy `source` to a new unique path named after its content. */
  stage(source: string, name: string): StagedFile {
    const bytes = readFileSync(source);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    this.dir ??= mkdtempSync(path.join(tmpdir(), 'heimdall-plugins-'));
    this.seq += 1;
    const file = path.join(this.dir, `${name}-${sha256.slice(0, 12)}-${this.seq}${path.extname(source)}`);
    copyFileSync(source, file);
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
