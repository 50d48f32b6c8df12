/**
 * The dashboard, on the admin listener: a page (HTML, script, styles and the uPlot chart library, all served from
 * the package itself) and a small JSON API under /dashboard/api that the page reads.
 *
 * Authentication: a browser cannot send a bearer header when it navigates, so the page itself (a shell with no data
 * in it, the same for every gateway) is the only thing served without the admin token. It asks for the token, keeps
 * it in sessionStorage, and sends it as `Authorization: Bearer` on every data call and every control (the existing
 * admin API). No cookie is ever set, so no other site can make the browser act with the token (no CSRF), and a
 * strict Content-Security-Policy (no inline script, nothing from elsewhere) keeps injected script from reading it.
 * See docs/dashboard.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, errorBody } from '../errors.js';
import type { DashboardSource } from './source.js';

/** Nothing but this origin, no inline script or style, no frames, no forms posting elsewhere. */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The most requests one list call returns. */
const MAX_LIST = 1000;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/**
 * The page's files: name -> [content type, file]. From the sources (src/dashboard/assets, next to this file when it
 * runs as TypeScript, and what the package ships beside dist/) and uPlot's dist files from node_modules.
 */
function assetFiles(): Record<string, [string, string]> {
  const dir = [path.join(here, 'assets'), path.join(here, '..', '..', 'src', 'dashboard', 'assets')].find((d) => existsSync(d));
  if (dir === undefined) throw Errors.INTERNAL('the dashboard assets are missing from the package (src/dashboard/assets)');
  return {
    'index.html': ['text/html; charset=utf-8', path.join(dir, 'index.html')],
    'app.js': ['text/javascript; charset=utf-8', path.join(dir, 'app.js')],
    'style.css': ['text/css; charset=utf-8', path.join(dir, 'style.css')],
    'uPlot.iife.min.js': ['text/javascript; charset=utf-8', require.resolve('uplot/dist/uPlot.iife.min.js')],
    'uPlot.min.css': ['text/css; charset=utf-8', require.resolve('uplot/dist/uPlot.min.css')],
  };
}

/** True for the page's shell and its static files: the only admin routes answered without the token. */
export function isDashboardShell(req: FastifyRequest): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && (req.routeOptions.config as { dashboardShell?: boolean } | undefined)?.dashboardShell === true;
}

/** Registers the page, its files and its data API on the admin app. */
export function dashboardRoutes(app: FastifyInstance, source: DashboardSource): void {
  // Read once: they are small, and a page must not change under a running gateway.
  const files = new Map(Object.entries(assetFiles()).map(([name, [type, file]]) => [name, { type, body: readFileSync(file) }]));
  const send = (reply: FastifyReply, name: string) => {
    const file = files.get(name);
    if (file === undefined) return reply.code(404).send(errorBody(Errors.ROUTE_NOT_FOUND('GET', `/dashboard/assets/${name}`)));
    return reply.type(file.type).header('cache-control', 'no-cache').send(file.body);
  };
  const shell = { config: { dashboardShell: true } };

  app.addHook('onSend', async (req, reply) => {
    if (!req.url.startsWith('/dashboard')) return;
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (req.url.startsWith('/dashboard/api/')) reply.header('cache-control', 'no-store');
  });

  app.get('/dashboard', shell, async (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard/', shell, async (_req, reply) => send(reply, 'index.html'));
  app.get('/dashboard/assets/:file', shell, async (req, reply) => send(reply, (req.params as { file: string }).file));

  app.get('/dashboard/api/info', async () => source.info());
  app.get('/dashboard/api/plugins', async () => ({ plugins: await source.plugins() }));
  app.get('/dashboard/api/series', async () => ({ now: Date.now(), hooks: await source.series() }));
  app.get('/dashboard/api/requests', async (req) => {
    const asked = Number((req.query as { limit?: string }).limit ?? 100);
    const limit = Number.isInteger(asked) && asked > 0 ? Math.min(asked, MAX_LIST) : 100;
    return { requests: await source.requests(limit) };
  });
  app.get('/dashboard/api/requests/:id', async (req) => {
    const id = (req.params as { id: string }).id;
    const found = await source.request(id);
    if (found === null) throw Errors.ADMIN_REQUEST_UNKNOWN(id.slice(0, 128));
    return found;
  });
  app.get('/dashboard/api/providers', async () => source.providers());
}
