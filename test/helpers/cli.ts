/**
 * Running the heimdall command as a child process, the way users run it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO } from './fixtures.js';

const CLI = path.join(REPO, 'src', 'cli.ts');

export function runCli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  // The same loader flags this test runs under, so the TypeScript sources run directly.
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  /** Resolves once its output has all been read too (the exit can come first). */
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  /** Resolves to the gateway's URL once it listens. */
  const listening = async (ms = 30000): Promise<string> => {
    await waitFor(() => /Server listening at/.test(stdout), 'the server to listen', ms);
    const line = stdout.split('\n').find((l) => l.includes('Server listening at')) ?? '{}';
    return (JSON.parse(line) as { msg: string }).msg.replace('Server listening at ', '');
  };
  return { child, exited, closed, listening, out: () => stdout, err: () => stderr };
}

export async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 20000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
