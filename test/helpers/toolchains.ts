/**
 * Tests that need an optional tool (Go, Rust's crates, a cross-compiler) skip where it is missing, with a reason
 * naming the tool and how to install it, so `npm test` passes on a machine that has only what the gateway needs.
 *
 * CI sets HEIMDALL_TEST_REQUIRE_TOOLS=1: there a missing tool is a failure, never a skip, so a run can't silently
 * lose the Go, Rust or cross-architecture tests.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import tap from 'tap';

export const REQUIRE_TOOLS = process.env.HEIMDALL_TEST_REQUIRE_TOOLS === '1';

/**
 * The `skip` option for a test that needs a tool: false when it is there (`missing` is false or empty), else the
 * reason. Under HEIMDALL_TEST_REQUIRE_TOOLS=1 a missing tool also records a failure.
 */
export function needs(missing: string | false | undefined): string | false {
  if (!missing) return false;
  if (REQUIRE_TOOLS) tap.fail(`a tool the test suite needs is missing: ${missing} (HEIMDALL_TEST_REQUIRE_TOOLS=1)`);
  return missing;
}

/** Whether `cmd args` runs and exits 0 (a tool's --version, say). */
export async function hasCommand(cmd: string, args: string[]): Promise<boolean> {
  try {
    await promisify(execFile)(cmd, args);
    return true;
  } catch {
    return false;
  }
}

/** Where Debian's packaged Rust crates live (apt-get install librust-serde-dev ...). */
export const DEBIAN_CRATES = '/usr/share/cargo/registry';

/**
 * Why a Rust plugin can't be built here, or false: cargo missing, or no crates to build with (crates.io is not
 * reachable offline, so Debian's packaged serde crates are what the build uses).
 */
export async function rustMissing(): Promise<string | false> {
  if (!(await hasCommand('cargo', ['--version']))) return 'cargo is not installed (apt-get install cargo)';
  const crates = existsSync(DEBIAN_CRATES) && readdirSync(DEBIAN_CRATES).some((d) => d.startsWith('serde_json-1'));
  if (!crates) return "Rust's crates are not installed (apt-get install librust-serde-dev librust-serde-derive-dev librust-serde-json-dev)";
  return false;
}
