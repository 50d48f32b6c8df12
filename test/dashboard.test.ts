/**
 * The dashboard in a real headless Chromium, against a real gateway on loopback with real native plugins (the C
 * examples the repository builds, and test plugins), a real loopback upstream, and the admin token. Screenshots of
 * each view go to tmp/dashboard/ (ignored by git).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test as Tap } from 'tap';
import type { Page } from 'playwright-core';
import { eventually, browserMissing, launchBrowser, type Browser } from './helpers/browser.js';
import { probePlugins, REPO, versionedBuilds } from './helpers/fixtures.js';
import { chat, postJson, startGateway, type RunningGateway } from './helpers/gateway.js';
import { needs } from './helpers/toolchains.js';
import { startKeyedUpstream } from './helpers/keyed-upstream.js';
import { startUpstream } from './helpers/upstream.js';

const TOKEN = 'dashboard-token-for-tests-0123456789abcdef';
process.env.HEIMDALL_TEST_DASHBOARD_TOKEN = TOKEN;
const UPSTREAM_KEY = 'sk-upstream-secret-for-dashboard-tests';
process.env.HEIMDALL_TEST_DASHBOARD_UPSTREAM_KEY = UPSTREAM_KEY;
/** A provider's three keys for the Providers view: the upstream limits the first and refuses the third. */
const KEYS = {
  HEIMDALL_TEST_DASHBOARD_KEY_LIMITED: 'sk-dash-limited-8e2c4a6f1b3d5970',
  HEIMDALL_TEST_DASHBOARD_KEY_GOOD: 'sk-dash-good-3b7f9d1e5a2c8064',
  HEIMDALL_TEST_DASHBOARD_KEY_REVOKED: 'sk-dash-revoked-6d4a2e8c0f1b3957',
};
Object.assign(process.env, KEYS);
const SHOTS = path.join(REPO, 'tmp', 'dashboard');
const example = (name: string) => path.join(REPO, 'build', 'Release', `${name}.so`);

const skip = needs(browserMissing());
// A real browser on a machine shared with other test files: more time than tap's default per file. Every wait inside
// is bounded on its own (15 s per browser action or condition).
t.setTimeout(300_000);

/** A plugin directory with the plugins under test, and a gateway config using them with the admin API and dashboard on. */
async function setup({ breakerFailures = 5, versioned = true, transport = false, broken = false } = {}) {
  const probes = await probePlugins();
  const builds = await versionedBuilds();
  const root = mkdtempSync(path.join(tmpdir(), 'heimdall-dashboard-'));
  const dir = path.join(root, 'plugins');
  mkdirSync(dir);
  copyFileSync(example('validate'), path.join(dir, 'validate.so'));
  copyFileSync(example('header_rewrite'), path.join(dir, 'header_rewrite.so'));
  copyFileSync(example('transform'), path.join(dir, 'transform.so'));
  copyFileSync(probes.misbehave, path.join(dir, 'misbehave.so'));
  copyFileSync(probes.misbehave, path.join(dir, 'broken.so'));
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
        ...(transport ? [{ path: path.join(dir, 'header_rewrite.so'), config: { set: { 'x-team': 'search' }, remove: ['x-debug'] } }] : []),
        { path: path.join(dir, 'validate.so'), config: { banned_words: ['falcon'], status_code: 403, message: 'blocked by policy' } },
        { path: path.join(dir, 'misbehave.so'), breaker: { failures: breakerFailures, window_ms: 60_000, cooldown_ms: 600_000 } },
        { path: path.join(dir, 'transform.so'), config: { system_prompt: 'Be brief.', tag: 'transformed' } },
        // Its PostHook answers for every request (even a failed one): left out where a test needs the provider's answer.
        ...(versioned ? [{ path: path.join(dir, 'versioned.so') }] : []),
        // A second copy of misbehave: its name is taken, so it fails to load; being optional, it stays listed.
        ...(broken ? [{ path: path.join(dir, 'broken.so'), optional: true }] : []),
      ],
    }),
  };
}

async function admin(gw: RunningGateway, method: string, url: string, token: string | null = TOKEN) {
  const res = await fetch(`${gw.adminUrl}${url}`, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
}

/** Opens the dashboard in a new tab and signs in with the token. */
async function signIn(t: Tap, browser: Browser, gw: RunningGateway, view = 'plugins') {
  const { page, problems } = await browser.page();
  t.teardown(() => page.close());
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
    await page.close(); // before the gateway closes: an open tab keeps polling its admin listener
  });

  t.test('the plugin table matches /health, in pipeline order', async (t) => {
    const up = await startUpstream(t);
    const env = await setup({ broken: true });
    const gw = await startGateway(t, env.config(up.baseUrl));
    const health = (await (await fetch(`${gw.url}/health`)).json()) as { plugins: { name: string; status: string; language: string; abi_version: string; hooks: string[]; mode: string }[] };
    const listed = (await admin(gw, 'GET', '/api/plugins')).json.plugins as { name: string; sha256: string }[];

    const { page, problems } = await signIn(t, browser, gw);
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
      ['validate', 'misbehave', 'transform', 'versioned', 'broken'],
    );
    t.same(
      table.map(({ name, language, abi, mode, hooks, state }) => ({ name, language, abi, mode, hooks, state })),
      health.plugins.map((p) => ({ name: p.name, language: p.language ?? '–', abi: p.abi_version ?? '–', mode: p.mode ?? '–', hooks: p.hooks?.join(', ') || '–', state: p.status === 'error' ? 'failed' : p.status })),
      'name, language, ABI version, mode, hooks and state as /health has them',
    );
    t.same(
      table.map((r) => r.sha256 || undefined),
      listed.map((p) => p.sha256),
      'the file hashes the admin API reports',
    );
    t.equal(table[0]?.sha256, sha256(path.join(env.dir, 'validate.so')), 'which are the files on disk');
    const broken = page.locator('#plugins-table tr[data-plugin="broken"]');
    t.match(await broken.textContent(), /failed to load.*already registered as "misbehave"/, 'a plugin that failed to load says why');
    t.ok(await broken.evaluate((e) => e.classList.contains('trouble')), 'and is marked');
    await shot(page, 'plugins');
    t.same(problems, []);
    await page.close(); // before the gateway closes: an open tab keeps polling its admin listener
  });

  t.test('after traffic, the charts and the inspector show it: a short-circuit, a failing hook, a fallback, a stream', async (t) => {
    const up = await startUpstream(t);
    const env = await setup({ versioned: false, transport: true });
    const gw = await startGateway(t, env.config(up.baseUrl));
    // The inspector records while someone looks: a request before the page opened is not kept.
    const unseen = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', 'nobody is looking'));
    const { page, problems } = await signIn(t, browser, gw);
    const send = (content: string, extra: Record<string, unknown> = {}, model = 'openai/gpt-test') => postJson(`${gw.url}/v1/chat/completions`, chat(model, content, extra));
    for (let i = 0; i < 3; i++) t.equal((await send(`hello ${i}`)).status, 200);
    const blocked = await send('tell me about falcon');
    t.equal(blocked.status, 403, 'validate short-circuits');
    const failing = await send('please trigger:fail now');
    t.equal(failing.status, 200, 'misbehave fails, and the request goes on without it');
    const fallback = await send('try the other one', { fallbacks: ['openai/gpt-backup'] }, 'openai/fail-500');
    t.equal(fallback.status, 200, 'the fallback answers');
    const streamed = await send('stream this', { stream: true });
    t.equal(streamed.status, 200);
    const id = (res: { headers: Headers }) => res.headers.get('x-request-id') as string;
    const chart = (plugin: string, hook: string) => page.locator(`.chart[data-plugin="${plugin}"][data-hook="${hook}"]`);
    await eventually(async () => Number(await chart('validate', 'PreHook').getAttribute('data-short-circuits').catch(() => '0')) >= 1, 'the short-circuit in the chart');
    t.equal(await chart('validate', 'PreHook').getAttribute('data-calls'), '9', 'every PreHook call is counted (a fallback runs them again)');
    t.equal(await chart('misbehave', 'PreHook').getAttribute('data-errors'), '1', 'the failing hook is counted');
    t.ok(await chart('misbehave', 'PreHook').evaluate((e) => e.classList.contains('trouble')), 'and its chart is marked');
    t.notOk(await chart('transform', 'PreHook').evaluate((e) => e.classList.contains('trouble')), 'a healthy hook is not');
    t.ok(Number(await chart('misbehave', 'StreamChunkHook').getAttribute('data-calls')) > 1, 'chunk hooks are counted');
    t.ok((await page.locator('.chart canvas').count()) >= 6, 'the charts are drawn');
    t.match(await chart('validate', 'PreHook').locator('.summary').textContent(), /9 calls · 0 errors · 1 short-circuits/);
    await shot(page, 'plugins-after-traffic');

    await page.click('.tab[data-view="requests"]');
    const rows = page.locator('#requests-table tbody tr');
    await eventually(async () => (await rows.count()) >= 7, 'the requests in the inspector');
    t.equal(await rows.first().getAttribute('data-request'), id(streamed), 'newest first');
    t.equal(await rows.count(), 7, 'only those sent while the page was open');
    t.equal(await page.locator(`#requests-table tr[data-request="${id(unseen)}"]`).count(), 0);

    // The short-circuit: validate answered; nothing after it ran, and the provider was never called.
    await page.click(`#requests-table tr[data-request="${id(blocked)}"]`);
    const steps = page.locator('#request-detail tr.step');
    await eventually(async () => (await page.locator('#request-detail h3').textContent().catch(() => '')) === id(blocked), 'its timeline');
    const timeline = () => steps.evaluateAll((trs) => trs.map((tr) => `${tr.getAttribute('data-kind')}:${tr.getAttribute('data-hook') ?? ''}:${tr.getAttribute('data-plugin')}:${tr.getAttribute('data-decision')}`));
    t.same(await timeline(), ['hook:TransportInterceptor:header_rewrite:modified', 'hook:PreHook:validate:short-circuit'], 'nothing runs after the short-circuit');
    t.match(await page.locator('#requests-table tr[data-request="' + id(blocked) + '"]').textContent(), /short-circuit: validate/);
    await shot(page, 'inspector-short-circuit');

    // The failing hook: an error step with its message, and the request went on to the provider and PostHooks.
    await page.click(`#requests-table tr[data-request="${id(failing)}"]`);
    await eventually(async () => (await page.locator('#request-detail h3').textContent().catch(() => '')) === id(failing), 'its timeline');
    t.same(await timeline(), [
      'hook:TransportInterceptor:header_rewrite:modified',
      'hook:PreHook:validate:continue',
      'hook:PreHook:misbehave:error',
      'hook:PreHook:transform:modified',
      'provider::openai/gpt-test:answered',
      'hook:PostHook:transform:modified',
      'hook:PostHook:misbehave:continue',
    ]);
    t.match(await page.locator('#request-detail tr[data-decision="error"] .note').textContent(), /misbehave: asked to fail/, 'with the plugin\'s message');
    t.match(await page.locator('#requests-table tr[data-request="' + id(failing) + '"]').textContent(), /1 hook error/);
    await shot(page, 'inspector-failing-hook');

    // The fallback: the first provider call failed, the second model answered.
    await page.click(`#requests-table tr[data-request="${id(fallback)}"]`);
    await eventually(async () => (await page.locator('#request-detail h3').textContent().catch(() => '')) === id(fallback), 'its timeline');
    const providers = (await timeline()).filter((s) => s.startsWith('provider'));
    t.same(providers, ['provider::openai/fail-500:error', 'provider::openai/gpt-backup:answered']);
    t.match(await page.locator('#request-detail .detail-head').textContent(), /served by openai\/gpt-backup/);

    // The stream: its chunk hooks fold into one step.
    await page.click(`#requests-table tr[data-request="${id(streamed)}"]`);
    await eventually(async () => (await page.locator('#request-detail h3').textContent().catch(() => '')) === id(streamed), 'its timeline');
    t.ok((await timeline()).includes('chunks::misbehave:' + (await page.locator('#request-detail tr[data-kind="chunks"]').getAttribute('data-decision'))), 'a chunk-hook step');
    t.match(await page.locator('#request-detail tr[data-kind="chunks"]').getAttribute('data-decision'), /^\d+ chunks$/);

    await page.click('.tab[data-view="providers"]');
    const failRow = page.locator('#upstream-table tr[data-upstream="openai/fail-500"]');
    await failRow.waitFor();
    t.match(await failRow.textContent(), /fail-500.*1.*1.*100\.0%/, 'upstream errors and error rate');
    t.ok(await failRow.evaluate((e) => e.classList.contains('trouble')));
    t.match(await page.locator('#providers-table tr[data-provider="openai"]').textContent(), /openai.*openai/);
    await shot(page, 'providers');

    // No response of the dashboard's carries a secret: not the admin token, not the provider's key.
    for (const url of ['/dashboard/api/info', '/dashboard/api/plugins', '/dashboard/api/series', '/dashboard/api/requests', `/dashboard/api/requests/${id(failing)}`, '/dashboard/api/providers']) {
      const res = await admin(gw, 'GET', url);
      t.equal(res.status, 200, url);
      t.notMatch(res.text, new RegExp(`${TOKEN}|${UPSTREAM_KEY}`), `${url} holds no secret`);
    }
    t.same(problems, []);
    await page.close(); // before the gateway closes: an open tab keeps polling its admin listener
  });

  t.test('controls go through the admin API: reload changes the hash, a quarantine is shown and lifted, refusals are shown', async (t) => {
    const up = await startUpstream(t);
    const env = await setup({ breakerFailures: 3 });
    const gw = await startGateway(t, env.config(up.baseUrl));
    const { page, problems } = await signIn(t, browser, gw);
    const row = (name: string) => page.locator(`#plugins-table tr[data-plugin="${name}"]`);
    await row('versioned').waitFor();

    // Reload: a new build of versioned.so, loaded from the page.
    const before = await row('versioned').locator('.hash').getAttribute('data-sha256');
    t.equal(before, sha256(env.builds.A));
    copyFileSync(env.builds.B, path.join(env.dir, 'versioned.so'));
    await row('versioned').locator('button[data-action="reload"]').click();
    await eventually(async () => (await row('versioned').locator('.hash').getAttribute('data-sha256')) === sha256(env.builds.B), 'the new hash');
    t.not(sha256(env.builds.A), sha256(env.builds.B));
    t.match(await page.locator('#message').textContent(), /versioned: done/);
    const answer = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', 'which version?'));
    t.match(answer.json.choices[0].message.content, /post=B/, 'and the new build serves');

    // Quarantine: misbehave fails three times in a row.
    for (let i = 0; i < 3; i++) await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', 'trigger:fail'));
    await eventually(async () => (await row('misbehave').getAttribute('data-state')) === 'quarantined', 'the quarantine on the page');
    t.ok(await row('misbehave').evaluate((e) => e.classList.contains('trouble')), 'marked as in trouble');
    t.match(await row('misbehave').textContent(), /quarantined.*PreHook: .*asked to fail/, 'with its last failure');
    const health = (await (await fetch(`${gw.url}/health`)).json()) as { plugins: { name: string; status: string }[] };
    t.equal(health.plugins.find((p) => p.name === 'misbehave')?.status, 'quarantined', 'as /health says');
    await shot(page, 'quarantined');
    await row('misbehave').locator('button[data-action="lift quarantine"]').click();
    await eventually(async () => (await row('misbehave').getAttribute('data-state')) === 'active', 'the quarantine lifted');
    t.equal(gw.gateway.plugins.status().find((s) => s.name === 'misbehave')?.quarantine?.state, 'closed', 'in the gateway too');

    // Disable, enable, reorder.
    await row('transform').locator('button[data-action="disable"]').click();
    await eventually(async () => (await row('transform').getAttribute('data-state')) === 'disabled', 'disabled');
    await row('transform').locator('button[data-action="enable"]').click();
    await eventually(async () => (await row('transform').getAttribute('data-state')) === 'active', 'enabled again');
    await row('validate').locator('button[data-action="down"]').click();
    await eventually(async () => (await page.locator('#plugins-table tbody tr').first().getAttribute('data-plugin')) === 'misbehave', 'the new order');
    t.same(gw.gateway.plugins.active.map((p) => p.info.name), ['misbehave', 'validate', 'transform', 'versioned']);

    // Load a plugin from plugin_dirs; one from elsewhere is refused with the API's own words.
    await page.fill('#add-path', path.join(env.dir, 'p1.so'));
    await page.click('#add-form button[type=submit]');
    await row('p1').waitFor();
    t.equal(await row('p1').getAttribute('data-state'), 'active');
    await page.fill('#add-path', example('cache'));
    await page.click('#add-form button[type=submit]');
    await eventually(async () => /HEIMDALL_ERR_ADMIN_PATH/.test((await page.locator('#message').textContent()) ?? ''), 'the refusal');
    t.match(await page.locator('#message').textContent(), /is not inside the admin plugin directories|plugin_dirs/, "the API's error text");
    await shot(page, 'refused');
    // The refusal was a 403 the browser logs as a failed load; nothing else went wrong.
    t.same(problems.filter((p) => !/status of 403/.test(p)), []);
    await page.close(); // before the gateway closes: an open tab keeps polling its admin listener
  });

  t.test('with log.bodies on, the inspector shows the bodies, redacted as in the logs', async (t) => {
    const up = await startUpstream(t);
    const env = await setup({ versioned: false });
    const gw = await startGateway(t, { ...env.config(up.baseUrl), log: { level: 'info', bodies: true } });
    const secret = 'sk-client-secret-in-the-body';
    const { page, problems } = await signIn(t, browser, gw, 'requests');
    const res = await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', 'the body text', { api_key: secret }));
    t.equal(res.status, 200);
    const logged = gw.logs.find((l) => l.msg === 'bodies') as { request: { api_key: string } } | undefined;
    t.equal(logged?.request.api_key, '[redacted]', 'the log line redacts it');
    await page.click(`#requests-table tr[data-request="${res.headers.get('x-request-id')}"]`);
    await page.locator('#request-detail pre.body-request').waitFor();
    t.match(await page.locator('#request-detail pre.body-request').textContent(), /the body text/);
    t.match(await page.locator('#request-detail pre.body-request').textContent(), /"api_key": "\[redacted\]"/, 'and so does the inspector');
    t.notMatch(await page.locator('#request-detail').textContent(), new RegExp(secret));
    t.notMatch((await admin(gw, 'GET', `/dashboard/api/requests/${res.headers.get('x-request-id')}`)).text, new RegExp(secret), 'nor does its data');
    t.match(await page.locator('#request-detail pre.body-response').textContent(), /upstream says/);
    t.same(problems, []);
    await page.close(); // before the gateway closes: an open tab keeps polling its admin listener
  });

  t.test('the Providers view marks keys resting after a 429 or a 401, with a countdown, and shows no key', async (t) => {
    const up = await startKeyedUpstream(t, {
      [KEYS.HEIMDALL_TEST_DASHBOARD_KEY_LIMITED]: { status: 429, headers: { 'retry-after': '30' } },
      [KEYS.HEIMDALL_TEST_DASHBOARD_KEY_REVOKED]: { status: 401 },
    });
    const gw = await startGateway(t, {
      log: { level: 'warn' },
      providers: {
        openai: {
          base_url: up.baseUrl,
          keys: Object.keys(KEYS).map((name, i) => ({ key: `env.${name}`, ...(i === 1 ? { weight: 2, models: ['gpt-test', 'gpt-other'] } : {}) })),
        },
      },
      admin: { enabled: true, token: 'env.HEIMDALL_TEST_DASHBOARD_TOKEN' },
    });
    // Keys are drawn at random: send until both refused keys were tried (each then rests, and is not drawn again).
    const refused = [KEYS.HEIMDALL_TEST_DASHBOARD_KEY_LIMITED, KEYS.HEIMDALL_TEST_DASHBOARD_KEY_REVOKED];
    for (let i = 0; i < 40 && !refused.every((k) => up.keysSeen.includes(k)); i++) {
      t.equal((await postJson(`${gw.url}/v1/chat/completions`, chat('openai/gpt-test', `n${i}`))).status, 200);
    }
    t.ok(refused.every((k) => up.keysSeen.includes(k)), 'both refused keys were tried');

    const { page, problems } = await signIn(t, browser, gw, 'providers');
    const row = (position: number) => page.locator(`#keys-table tr[data-key="openai#${position}"]`);
    await row(1).waitFor();
    t.equal(await row(1).getAttribute('data-resting'), '429', 'key 1 rests after its 429');
    t.ok(await row(1).evaluate((e) => e.classList.contains('trouble')), 'marked');
    t.match(await row(1).textContent(), /key 1.*resting · 429.*rate limited \(429\): \d+ s more, until/);
    const left = async () => Number(/(\d+) s/.exec((await row(1).locator('.countdown').textContent()) ?? '')?.[1]);
    const first = await left();
    t.ok(first > 20 && first <= 30, `counting down from its retry-after of 30 s (${first} s left)`);
    await eventually(async () => (await left()) < first, 'the countdown to move', 5000);
    t.equal(await row(2).getAttribute('data-resting'), 'no', 'key 2 does not rest');
    t.match(await row(2).textContent(), /key 2.*2.*gpt-test, gpt-other.*in use/);
    t.equal(await row(3).getAttribute('data-resting'), '401', 'key 3 rests after its 401');
    t.match(await row(3).textContent(), /refused: unauthorized \(401\)/);
    await shot(page, 'providers-keys');

    const seen = `${await page.content()}\n${(await admin(gw, 'GET', '/dashboard/api/providers')).text}`;
    for (const key of Object.values(KEYS)) {
      t.notOk(seen.includes(key) || seen.includes(key.slice(0, 10)) || seen.includes(key.slice(-8)), 'neither the page nor its data holds a key, or part of one');
    }
    t.same(problems, []);
    await page.close();
  });

  t.test('admin.dashboard.record: "always" records without anyone looking; requests: 0 turns the inspector off', async (t) => {
    const up = await startUpstream(t);
    const env = await setup({ versioned: false });
    const base = env.config(up.baseUrl);
    const always = await startGateway(t, { ...base, admin: { ...base.admin, dashboard: { record: 'always', requests: 2 } } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await postJson(`${always.url}/v1/chat/completions`, chat('openai/gpt-test', `n${i}`))).headers.get('x-request-id') as string);
    const listed = (await admin(always, 'GET', '/dashboard/api/requests')).json.requests as { id: string }[];
    t.same(listed.map((r) => r.id), [ids[2], ids[1]], 'the ring keeps the last 2, newest first');
    const left = await admin(always, 'GET', `/dashboard/api/requests/${ids[0]}`);
    t.equal(left.status, 404, 'one that left the ring is gone');
    t.equal(left.json.error.code, 'HEIMDALL_ERR_ADMIN_REQUEST_UNKNOWN');
    t.match((await admin(always, 'GET', '/dashboard/api/info')).json, { recording: 'always', inspector_size: 2 });

    // On the page: a row clicked after its request left the ring says so where its timeline would be. The page is
    // handed the list as it was before ids[0] left (its own list is re-read every 2 s, a race with more requests);
    // the click then asks the gateway for a request that really is gone.
    const listedFull = (await admin(always, 'GET', '/dashboard/api/requests')).json.requests as Record<string, unknown>[];
    const stale = [{ ...(listedFull[1] as Record<string, unknown>), id: ids[0] }];
    const { page, problems } = await signIn(t, browser, always, 'requests');
    await page.route(/\/dashboard\/api\/requests(\?[^/]*)?$/, (route) => route.fulfill({ json: { requests: stale } }));
    await page.locator(`#requests-table tr[data-request="${ids[0]}"]`).click();
    const gone = (await page.locator('#request-detail p.gone').textContent()) ?? '';
    t.match(gone, /not in the inspector's ring.*HEIMDALL_ERR_ADMIN_REQUEST_UNKNOWN/, 'the page says the request has left the ring');
    t.equal(await page.locator('#requests-table tbody tr.selected').count(), 0, 'and selects nothing');
    t.same(problems.filter((p) => !/status of 404/.test(p)), []);
    await page.close();

    const off = await startGateway(t, { ...base, admin: { ...base.admin, dashboard: { requests: 0 } } });
    t.match((await admin(off, 'GET', '/dashboard/api/info')).json, { recording: 'off', inspector_size: 0 });
    await postJson(`${off.url}/v1/chat/completions`, chat('openai/gpt-test', 'hello'));
    t.same((await admin(off, 'GET', '/dashboard/api/requests')).json.requests, []);

    const none = await startGateway(t, { ...base, admin: { ...base.admin, dashboard: { enabled: false } } });
    t.equal((await admin(none, 'GET', '/dashboard/', null)).status, 401, 'with the dashboard off, there is no page: only the admin API');
    t.equal((await admin(none, 'GET', '/dashboard/api/plugins')).status, 404);
  });
});
