/**
 * A real headless Chromium for the dashboard's tests: the system's own (Debian's `chromium` package, which .ci/run
 * installs), driven by playwright-core, which downloads no browser. HEIMDALL_TEST_CHROMIUM names another binary.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const CANDIDATES = [process.env.HEIMDALL_TEST_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The browser binary, or undefined when there is none. */
export function chromiumPath(): string | undefined {
  return CANDIDATES.find((p): p is string => p !== undefined && p !== '' && existsSync(p));
}

/** Why the browser tests can't run here, or false. */
export function browserMissing(): string | false {
  return chromiumPath() === undefined ? 'no Chromium found (apt-get install chromium, or set HEIMDALL_TEST_CHROMIUM)' : false;
}

/** Flags that keep a headless Chromium quiet and local: no sandbox (tests run as root), no GPU, no network of its own. */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  /** A new tab: its sessionStorage starts empty. Console errors and CSP violations are collected in `problems`. */
  page(): Promise<{ page: Page; problems: string[] }>;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile directory, removed on close. */
export async function launchBrowser(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  const executablePath = chromiumPath();
  if (executablePath === undefined) throw new Error(browserMissing() as string);
  const profile = mkdtempSync(path.join(tmpdir(), 'heimdall-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(15_000);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    // Bounded: a browser that does not close in time is left to exit when this process does (its pipe closes).
    await Promise.race([context.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000).unref())]);
    rmSync(profile, { recursive: true, force: true });
  };
  t.teardown(close);
  return {
    page: async () => {
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      return { page, problems };
    },
    close,
  };
}

/** Polls `check` (in the test) until it returns true, for at most `ms`. */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
