/**
 * The admin API: list, load, reconfigure, reload, unload, enable, disable and reorder plugins at run time.
 *
 * Loading a shared object runs its code, so this API is off unless configured, listens on its own port (loopback
 * unless admin.allow_remote says otherwise), demands a long bearer token compared in constant time, and loads only
 * files that really are, symlinks followed, inside the configured plugin directories: at every load of a plugin it
 * added, not only the first (the registry checks the file it copies). Responses never show secrets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { renameSync, readFileSync, writeFileSync } from 'node:fs';
import { BlockList, isIPv4 } from 'node:net';
import path from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { formatPath, resolveEnvRefs } from '../config/load.js';
import { pluginSchema, type AdminConfig } from '../config/schema.js';
import { redactSecrets } from '../config/redact.js';
import { dashboardRoutes, isDashboardShell } from '../dashboard/routes.js';
import type { DashboardSource } from '../dashboard/source.js';
import { Errors, HeimdallError, errorBody } from '../errors.js';
import { loggedPath } from '../logger.js';
import { realFile } from '../plugins/loader.js';
import type { ChangeResult, PluginChange, PluginControl, PluginView } from '../plugins/changes.js';
import type { PluginConfig } from '../config/schema.js';
import type { PluginStatus } from '../plugins/registry.js';

export interface AdminOptions {
  config: AdminConfig;
  /** What the API drives: this gateway's plugin registry, or, in a worker pool, the primary speaking for every worker. */
  control: PluginControl;
  /** config.json's directory: relative plugin paths resolve against it. */
  baseDir: string;
  log: Logger;
  /**
   * The main port's client limits (server.headers_timeout_ms, request_timeout_ms, keep_alive_timeout_ms), which the
   * admin listener keeps too: a client that trickles its request, or idles on a connection, is cut off here as well.
   */
  limits?: { headers_timeout_ms: number; request_timeout_ms: number; keep_alive_timeout_ms: number };
  /** The dashboard's data; the page (docs/dashboard.md) is served when given. */
  dashboard?: DashboardSource;
}

const ADMIN_LIMITS = { headers_timeout_ms: 10_000, request_timeout_ms: 30_000, keep_alive_timeout_ms: 5_000 };

const addBody = pluginSchema.extend({ position: z.number().int().nonnegative().optional() });
const configBody = z.strictObject({ config: z.record(z.string(), z.unknown()) });
const orderBody = z.strictObject({ order: z.array(z.string()) });

/** Shorter tokens are refused at start-up: this one guards loading native code. */
const MIN_TOKEN_LENGTH = 32;

export function createAdminApp({ config, control, baseDir, log, limits = ADMIN_LIMITS, dashboard }: AdminOptions) {
  checkHost(config);
  const expected = digest(adminToken(config));
  // Resolved once: a directory re-pointed later does not move the boundary.
  const dirs = config.plugin_dirs.map((d) => realFile(path.resolve(baseDir, d)));

  const requestTimeout = limits.request_timeout_ms;
  const keepAliveTimeout = limits.keep_alive_timeout_ms;
  const headersTimeout = Math.min(limits.headers_timeout_ms, requestTimeout);
  const app = Fastify({
    requestTimeout,
    keepAliveTimeout,
    http: { headersTimeout, requestTimeout, keepAliveTimeout, connectionsCheckingInterval: Math.max(50, Math.min(1000, headersTimeout / 4)) },
    bodyLimit: config.body_limit,
    // Closing ends idle keep-alive connections at once (the gateway closes the busy ones after a bound).
    forceCloseConnections: 'idle',
    loggerInstance: log.child({ component: 'admin' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
  });

  app.addHook('onRequest', async (req) => {
    if (isDashboardShell(req)) return; // the page's shell and files hold no data; everything they read needs the token
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    // Hashing both sides first makes the comparison constant-time whatever the lengths.
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      req.log.warn({ url: loggedPath(req.url), ip: req.ip }, 'admin request refused: missing or wrong token');
      throw Errors.ADMIN_AUTH();
    }
  });

  app.setErrorHandler((err: Error, req, reply) => {
    const e = toAdminError(err, config.body_limit);
    const status = e.type === 'plugin_error' || e.type === 'config_error' ? 422 : e.statusCode;
    if (status >= 500) req.log.error({ err }, e.message);
    reply.code(status).send(errorBody({ message: e.message, type: e.type, code: e.code, status_code: status }));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = Errors.ROUTE_NOT_FOUND(req.method, req.url);
    reply.code(404).send(errorBody(e));
  });

  const view = ({ status, spec }: PluginView) => ({ ...status, config: redactSecrets(spec.config) });
  const list = async () => ({ plugins: (await control.list()).map(view) });
  const name = (req: FastifyRequest) => (req.params as { name: string }).name;
  /** The plugin's view after a change (in a pool, as every worker now has it). */
  const after = async (result: ChangeResult) => {
    const status = result as PluginStatus;
    let found: PluginView | undefined;
    try {
      found = (await control.list()).find((v) => v.status.name === status.name);
    } catch (err) {
      // The change is made (and saved); only the fresh view is missing (a pool whose workers did not answer in
      // time): answer with the change's own status rather than an error a client would retry.
      log.warn({ plugin: status.name, err: (err as Error).message }, 'plugin change made; its fresh status could not be read');
    }
    return found === undefined ? { ...status, config: {} } : view(found);
  };
  const change = async (c: PluginChange) => after(await control.apply(c));

  app.get('/api/plugins', async () => list());
  app.get('/api/plugins/:name', async (req) => {
    const all = await control.list();
    const found = all.find((v) => v.status.name === name(req));
    if (found === undefined) throw Errors.ADMIN_PLUGIN_UNKNOWN(name(req), all.map((v) => v.status.name));
    return view(found);
  });
  app.post('/api/plugins', async (req, reply: FastifyReply) => {
    const { position, ...spec } = parse(addBody, req.body);
    checkEnvRefs(spec.config, config.allowed_env);
    // Confined for good: every later load of this entry (reload, enable, config change, watch) is checked too.
    const added = await change({ op: 'add', spec, baseDir, position, confinedTo: dirs });
    log.info({ plugin: added.name, file: added.file }, 'plugin added through the admin API');
    return reply.code(201).send(added);
  });
  app.put('/api/plugins/:name/config', async (req) => {
    const { config: pluginConfig } = parse(configBody, req.body);
    checkEnvRefs(pluginConfig, config.allowed_env);
    return change({ op: 'configure', name: name(req), config: pluginConfig });
  });
  app.post('/api/plugins/:name/reload', async (req) => change({ op: 'reload', name: name(req) }));
  app.post('/api/plugins/:name/unload', async (req) => change({ op: 'unload', name: name(req) }));
  app.post('/api/plugins/:name/enable', async (req) => change({ op: 'enable', name: name(req) }));
  app.post('/api/plugins/:name/disable', async (req) => change({ op: 'disable', name: name(req) }));
  app.post('/api/plugins/:name/unquarantine', async (req) => {
    const lifted = await change({ op: 'unquarantine', name: name(req) });
    log.info({ plugin: lifted.name }, 'plugin quarantine lifted through the admin API');
    return lifted;
  });
  app.delete('/api/plugins/:name', async (req, reply: FastifyReply) => {
    await control.apply({ op: 'remove', name: name(req) });
    return reply.code(204).send();
  });
  app.put('/api/plugins/order', async (req) => {
    await control.apply({ op: 'reorder', order: parse(orderBody, req.body).order });
    return list();
  });
  if (dashboard !== undefined) dashboardRoutes(app, dashboard);
  return app;
}

/** Write the plugin list back into config.json, keeping everything else as it was. */
export function persistPlugins(configFile: string, specs: readonly PluginConfig[]): void {
  const raw = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  raw.plugins = specs;
  const tmp = `${configFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(raw, null, 2)}\n`);
  renameSync(tmp, configFile); // atomic: a crash leaves the old file or the new one, never half of one
}

/** The token its env reference names; refused when unset, empty or short, naming the variable, never the value. */
function adminToken(config: AdminConfig): string {
  const token = resolveEnvRefs({ token: config.token }, 'admin').token;
  const variable = config.token?.slice('env.'.length) ?? '(none)';
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH) {
    throw Errors.CONFIG(
      'admin',
      `  - admin.token: the admin API token (environment variable ${variable}) must be at least ${MIN_TOKEN_LENGTH} ` +
        `characters long; set ${variable} to a random value, for example the output of: openssl rand -hex 32`,
    );
  }
  return token;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6'); // BlockList matches IPv4-mapped addresses (::ffff:127.0.0.1) against the IPv4 rule

/** A listener beyond this machine would let the network try tokens against native-code loading: asked for or refused. */
function checkHost(config: AdminConfig): void {
  if (config.allow_remote || isLoopback(config.host)) return;
  throw Errors.CONFIG(
    'admin',
    `  - admin.host: "${config.host}" is not a loopback address, and the admin API loads native code; keep it on ` +
      '"127.0.0.1" (reach it through an SSH tunnel or a TLS proxy), or set admin.allow_remote: true to listen there ' +
      'anyway (then only behind TLS or on a trusted network)',
  );
}

function isLoopback(host: string): boolean {
  const address = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (address === 'localhost') return true;
  // Any other host name is not: it could resolve anywhere (check() answers false for what is not an address).
  return LOOPBACK.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
}

/**
 * A config sent through the API may name only the environment variables admin.allowed_env lists: otherwise an
 * admin token could hand any secret of the gateway's environment (provider keys) to a plugin that echoes it.
 */
function checkEnvRefs(value: unknown, allowed: readonly string[]): void {
  const refs = JSON.stringify(value).match(/"env\.[A-Za-z_][A-Za-z0-9_]*"/g) ?? [];
  const refused = refs.map((r) => r.slice(5, -1)).filter((n) => !allowed.includes(n));
  if (refused.length > 0) {
    throw Errors.ADMIN_BAD_REQUEST(
      `the config refers to environment variable${refused.length > 1 ? 's' : ''} ${[...new Set(refused)].join(', ')}, ` +
        'which admin.allowed_env does not list; add them there, or put the plugin in config.json',
    );
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    throw Errors.ADMIN_BAD_REQUEST(result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '));
  }
  return result.data;
}

function toAdminError(err: Error, bodyLimit: number): HeimdallError {
  if (err instanceof HeimdallError) return err;
  const e = err as Error & { statusCode?: number; code?: string };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return Errors.ADMIN_BODY_TOO_LARGE(bodyLimit);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return Errors.CONTENT_TYPE(String(e.message.match(/'(.*)'/)?.[1] ?? 'missing'));
  if (e.statusCode !== undefined && e.statusCode < 500) return Errors.ADMIN_BAD_REQUEST(e.message);
  return Errors.INTERNAL(e.message);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
