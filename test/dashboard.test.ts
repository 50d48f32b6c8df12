/**
 * The dashboard in a real headless Chromium, against a real gateway on loopback with real native plugins (the C
 * examples the repository builds, and test plugins), a real loopback upstream, and the admin token. Screenshots of
 * each view go to tmp/dashboard/ (ignored by git).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Page } from 'playwright-core';
import { eventually, browserMissing, launchBrowser, type Browser } from './helpers/browser.js';
import { probePlugins, REPO, versionedBuilds } from './helpers/fixtures.js';
import { chat, postJson, startGateway, type RunningGateway } from './helpers/gateway.js';
import { needs } from './helpers/toolchains.js';
import { startUpstream } from './helpers/upstream.js';

const TOKEN = 'dashboard-token-for-tests-0123456789abcdef';
process.env.HEIMDALL_TEST_DASHBOARD_TOKEN = TOKEN;
const UPSTREAM_KEY = 'sk-upstream-secret-for-dashboard-tests';
process.env.HEIMDALL_TEST_DASHBOARD_UPSTREAM_KEY = UPSTREAM_KEY;
const SHOTS = path.join(REPO, 'tmp', 'dashboard');
const example = (name: string) => path.join(REPO, 'build', 'Release', `${name}.so`);

const skip = needs(browserMissing());

/** A plugin directory with the plugins under test, and a gateway config using them with the admin API and dashboard on. */
async function setup(extra: Record<string, unknown> = {}, breakerFailures = 5) {
  const probes = await probePlugins();
  const builds = await versionedBuilds();
  const root = mkdtempSync(path.join(tmpdir(), 'heimdall-dashboard-'));
  const dir = path.join(root, 'plugins');
  mkdirSync(dir);
  copyFileSync(example('validate'), path.join(dir, 'validate.so'));
  copyFileSync(example('transform'), path.join(dir, 'transform.so'));
  copyFileSync(probes.misbehave, path.join(dir, 'misbehave.so'));
  copyFileSync(builds.A, path.join(dir, 'versioned.so'));
  copyFileSync(probes.p1, path.join(dir, 'p1.so'));
  return {
    root,
    dir,
    builds,
    config: (upstreamUrl: string) => ({
      log: { level: 'warn' },
      providers: { openai: { base_url: upstreamUrl, api_key: 'env.HEIMDALL_TEST_DASHBOARD_UPSTREAM_KEY' } },
      admin: { enabled: true, token: 'env.HEIMDALL_TEST_DASHBOARD_TOKEN', plugin_dirs: [dir] },
      plugins: [
        { path: path.join(dir, 'validate.so'), config: { banned_words: ['falcon'], status_code: 403, message: 'blocked by policy' } },
        { path: path.join(dir, 'misbehave.so'), breaker: { failures: breakerFailures, window_ms: 60_000, cooldown_ms: 600_000 } },
        { path: path.join(dir, 'transform.so'), config: { system_prompt: 'Be brief.', tag: 'transformed' } },
        { path: path.join(dir, 'versioned.so') },
      ],
      ...extra,
    }),
  };
}

async function admin(gw: RunningGateway, method: string, url: string, token: string | null = TOKEN) {
  const res = await fetch(`${gw.adminUrl}${url}`, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
}

/** Opens the dashboard in a new tab and signs in with the token. */
async function signIn(browser: Browser, gw: RunningGateway, view = 'plugins') {
  const { page, problems } = await browser.page();
  await page.goto(`${gw.adminUrl}/dashboard/#${view}`);
  await page.fill('#token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.locator('#views').waitFor({ state: 'visible' });
  return { page, problems };
}

async function shot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

t.test('the dashboard', { skip }, async (t) => {
  const browser = await launchBrowser(t);

  t.test('refuses everything without the token', async (t) => {
    const up = await startUpstream(t);
    const env = await setup();
    const gw = await startGateway(t, env.config(up.baseUrl));

    // The shell is served (a browser can't send a bearer header when it navigates), with a strict CSP...
    const shell = await admin(gw, 'GET', '/dashboard/', null);
    t.equal(shell.status, 200);
    t.match(shell.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
    t.notMatch(shell.text, /<script>|<script [^>]*>[^<]/, 'no inline script');
    t.notMatch(shell.text, /https?:\/\//, 'nothing from elsewhere');
    // ...but no data and no control works without it.
    for (const url of ['/dashboard/api/info', '/dashboard/api/plugins', '/dashboard/api/series', '/dashboard/api/requests', '/dashboard/api/providers', '/api/plugins']) {
      const res = await admin(gw, 'GET', url, null);
      t.equal(res.status, 401, `${url} without the token`);
      t.equal(res.json.error.code, 'HEIMDALL_ERR_ADMIN_AUTH');
      t.equal((await admin(gw, 'GET', url, `${TOKEN}x`)).status, 401, `${url} with a wrong token`);
    }
    t.equal((await admin(gw, 'POST', '/api/plugins/validate/disable', null)).status, 401, 'nor any control');
    t.equal((await admin(gw, 'POST', '/dashboard/', null)).status, 401, 'only GET serves the shell');
    t.equal((await admin(gw, 'GET', '/dashboard/assets/../api/plugins', null)).status, 401, 'no way round through the asset route');

    const { page, problems } = await browser.page();
    await page.goto(`${gw.adminUrl}/dashboard/`);
    await page.locator('#login').waitFor({ state: 'visible' });
    t.equal(await page.locator('#views').isVisible(), false, 'no view without the token');
    t.equal(await page.locator('#plugins-table tbody tr').count(), 0, 'and no data');
    await shot(page, 'login');

    await page.fill('#token', 'not-the-token-0123456789abcdef-0123456789');
    await page.click('#login-form button[type=submit]');
    await page.locator('#login-error').waitFor({ state: 'visible' });
    t.match(await page.locator('#login-error').textContent(), /the admin API needs "authorization: Bearer <token>"/, "the API's refusal is shown");
    t.equal(await page.locator('#views').isVisible(), false);
    t.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');

    problems.length = 0; // the refusal above was logged by the browser as a failed load
    await page.fill('#token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.locator('#plugins-table tbody tr').first().waitFor();
    t.equal(await page.locator('#login').isVisible(), false, 'signed in, the token form goes');
    t.equal(await page.evaluate(() => document.cookie), '', 'no cookie is set');
    t.same(problems, [], 'no console errors, no CSP violations');
  });

  t.test('the plugin table matches /health, in pipeline order', async (t) => {
    const up = await startUpstream(t);
    const env = await setup();
    const gw = await startGateway(t, env.config(up.baseUrl));
    const health = (await (await fetch(`${gw.url}/health`)).json()) as { plugins: { name: string; status: string; language: string; abi_version: string; hooks: string[]; mode: string }[] };
    const listed = (await admin(gw, 'GET', '/api/plugins')).json.plugins as { name: string; sha256: string }[];

    const { page, problems } = await signIn(browser, gw);
    const rows = page.locator('#plugins-table tbody tr');
    await eventually(async () => (await rows.count()) === health.plugins.length, 'one row per plugin');
    const table = await rows.evaluateAll((trs) =>
      trs.map((tr) => {
        const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '');
        return { name: tr.getAttribute('data-plugin'), language: cells[2], abi: cells[3], mode: cells[4], hooks: cells[5], state: tr.getAttribute('data-state'), sha256: tr.querySelector('.hash')?.getAttribute('data-sha256') };
      }),
    );
    t.same(
      table.map((r) => r.name),
      ['validate', 'misbehave', 'transform', 'versioned'],
    );
    t.same(
      table.map(({ name, language, abi, mode, hooks, state }) => ({ name, language, abi, mode, hooks, state })),
      health.plugins.map((p) => ({ name: p.name, language: p.language, abi: p.abi_version, mode: p.mode, hooks: p.hooks.join(', '), state: p.status })),
      'name, language, ABI version, mode, hooks and state as /health has them',
    );
    t.same(
      table.map((r) => r.sha256),
      listed.map((p) => p.sha256),
      'the file hashes the admin API reports',
    );
    t.equal(table[0]?.sha256, sha256(path.join(env.dir, 'validate.so')), 'which are the files on disk');
    await shot(page, 'plugins');
    t.same(problems, []);
  });
});
