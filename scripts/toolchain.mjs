// What the Go and Rust plugin builds share: the platform's library extension, running a tool, running a test
// suite in several directories, and the command-line entry (`build [outDir]` or `--test`). Plain Node.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared-library extension of this platform, or null where the gateway does not load native plugins. */
export function libExtension() {
  if (process.platform === 'linux') return '.so';
  if (process.platform === 'darwin') return '.dylib';
  return null;
}

/** Runs a command; resolves { stdout, stderr }, rejects with both attached. stderr is echoed when `echo` is set. */
export function exec(file, args, { cwd, env = process.env, echo = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { cwd, env, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        err.stdout = stdout;
        err.stderr = stderr;
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
    if (echo) child.stderr?.pipe(process.stderr);
  });
}

/** An Error saying what failed, with the tail of the tool's output (and a hint, if any). */
export function failure(what, err, hint = '') {
  const tail = String(err.stderr || err.message).trim().split('\n').slice(-40).join('\n');
  return new Error(`${what} failed:\n${tail}${hint}`);
}

/** Runs one test command in each directory, echoing its output; throws on the first failure. */
export async function runSuites(label, dirs, command, args, { env, relativeTo, hint } = {}) {
  for (const dir of dirs) {
    try {
      const { stdout, stderr } = await exec(command, args, { cwd: dir, env });
      process.stderr.write(stderr);
      process.stdout.write(stdout);
    } catch (err) {
      process.stderr.write(err.stderr ?? '');
      process.stdout.write(err.stdout ?? '');
      throw failure(`${label} in ${path.relative(relativeTo ?? dir, dir) || '.'}`, err, hint?.() ?? '');
    }
  }
}

/**
 * The command line of a build script run directly: `node script [outDir]` builds, `node script --test` tests.
 * `moduleUrl` is the script's import.meta.url: nothing runs when the script is imported.
 */
export async function runMain(moduleUrl, { build, test }) {
  if (!process.argv[1] || path.resolve(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  const args = process.argv.slice(2);
  try {
    if (args[0] === '--test') {
      await test();
      return;
    }
    const result = await build(args[0] ? path.resolve(args[0]) : undefined);
    if (result.skipped) return;
    for (const p of result.plugins) {
      console.log(`${p.built ? 'built' : 'up to date'} ${p.name}: ${path.relative(process.cwd(), p.path) || p.path}`);
    }
  } catch (err) {
    console.error(err.message);
    process.exitCode = 1;
  }
}
