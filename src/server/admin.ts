/**
 * The admin API: list, load, reconfigure, reload, unload, enable, disable and reorder plugins at run time.
 *
 * Loading a shared object runs its code, so this API is off unless configured, listens on its own port (loopback
 * by default), demands a bearer token compared in constant time, and loads only files that resolve, symlinks
 * followed, inside the configured plugin directories. Responses never show secrets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { renameSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { formatPath, resolveEnvRefs } from '../config/load.js';
import { pluginSchema, type AdminConfig } from '../config/schema.js';
import { redactSecrets } from '../config/redact.js';
import { Errors, HeimdallError, errorBody } from '../errors.js';
import { loggedPath } from '../logger.js';
import { realFile, resolvePluginPath } from '../plugins/loader.js';
import type { PluginRegistry, PluginStatus } from '../plugins/registry.js';

export interface AdminOptions {
  config: AdminConfig;
  registry: PluginRegistry;
  /** config.json's directory: relative plugin paths resolve against it. */
  baseDir: string;
  log: Logger;
}

const addBody = pluginSchema.extend({ position: z.number().int().nonnegative().optional() });
const configBody = z.strictObject({ config: z.record(z.string(), z.unknown()) });
const orderBody = z.strictObject({ order: z.array(z.string()) });

export function createAdminApp({ config, registry, baseDir, log }: AdminOptions) {
  const token = resolveEnvRefs({ token: config.token }, 'admin').token;
  if (token === undefined || token === '') throw Errors.CONFIG('admin', '  - admin.token: the admin API needs a non-empty token');
  const expected = digest(token);
  const dirs = config.plugin_dirs.map((d) => realFile(path.resolve(baseDir, d)));

  const app = Fastify({
    loggerInstance: log.child({ component: 'admin' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
  });

  app.addHook('onRequest', async (req) => {
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    // Hashing both sides first makes the comparison constant-time whatever the lengths.
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      req.log.warn({ url: loggedPath(req.url), ip: req.ip }, 'admin request refused: missing or wrong token');
      throw Errors.ADMIN_AUTH();
    }
  });

  app.setErrorHandler((err: Error, req, reply) => {
    const e = toAdminError(err);
    const status = e.type === 'plugin_error' || e.type === 'config_error' ? 422 : e.statusCode;
    if (status >= 500) req.log.error({ err }, e.message);
    reply.code(status).send(errorBody({ message: e.message, type: e.type, code: e.code, status_code: status }));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = Errors.ROUTE_NOT_FOUND(req.method, req.url);
    reply.code(404).send(errorBody(e));
  });

  const view = (status: PluginStatus) => ({ ...status, config: redactSecrets(specOf(registry, status.name)) });
  const list = () => ({ plugins: registry.status().map(view) });
  const name = (req: FastifyRequest) => (req.params as { name: string }).name;

  app.get('/api/plugins', async () => list());
  app.get('/api/plugins/:name', async (req) => {
    const found = registry.status().find((s) => s.name === name(req));
    if (found === undefined) throw Errors.ADMIN_PLUGIN_UNKNOWN(name(req), registry.status().map((s) => s.name));
    return view(found);
  });
  app.post('/api/plugins', async (req, reply: FastifyReply) => {
    const { position, ...spec } = parse(addBody, req.body);
    checkEnvRefs(spec.config, config.allowed_env);
    const file = resolvePluginPath(spec.path, baseDir);
    if (!insideAny(realFile(file), dirs)) throw Errors.ADMIN_PATH(file, dirs);
    const status = await registry.add(spec, baseDir, position);
    log.info({ plugin: status.name, file }, 'plugin added through the admin API');
    return reply.code(201).send(view(status));
  });
  app.put('/api/plugins/:name/config', async (req) => {
    const { config: pluginConfig } = parse(configBody, req.body);
    checkEnvRefs(pluginConfig, config.allowed_env);
    return view(await registry.configure(name(req), pluginConfig));
  });
  app.post('/api/plugins/:name/reload', async (req) => view(await registry.reload(name(req))));
  app.post('/api/plugins/:name/unload', async (req) => view(await registry.unload(name(req))));
  app.post('/api/plugins/:name/enable', async (req) => view(await registry.setEnabled(name(req), true)));
  app.post('/api/plugins/:name/disable', async (req) => view(await registry.setEnabled(name(req), false)));
  app.post('/api/plugins/:name/unquarantine', async (req) => {
    const status = registry.liftQuarantine(name(req));
    log.info({ plugin: status.name }, 'plugin quarantine lifted through the admin API');
    return view(status);
  });
  app.delete('/api/plugins/:name', async (req, reply: FastifyReply) => {
    await registry.remove(name(req));
    return reply.code(204).send();
  });
  app.put('/api/plugins/order', async (req) => {
    await registry.reorder(parse(orderBody, req.body).order);
    return list();
  });
  return app;
}

/** Write the registry's plugin list back into config.json, keeping everything else as it was. */
export function persistPlugins(configFile: string, registry: PluginRegistry): void {
  const raw = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  raw.plugins = registry.specs();
  const tmp = `${configFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(raw, null, 2)}\n`);
  renameSync(tmp, configFile); // atomic: a crash leaves the old file or the new one, never half of one
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

function specOf(registry: PluginRegistry, name: string): Record<string, unknown> {
  const index = registry.status().findIndex((s) => s.name === name);
  return registry.specs()[index]?.config ?? {};
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    throw Errors.ADMIN_BAD_REQUEST(result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '));
  }
  return result.data;
}

function toAdminError(err: Error): HeimdallError {
  if (err instanceof HeimdallError) return err;
  const e = err as Error & { statusCode?: number; code?: string };
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return Errors.CONTENT_TYPE(String(e.message.match(/'(.*)'/)?.[1] ?? 'missing'));
  if (e.statusCode !== undefined && e.statusCode < 500) return Errors.ADMIN_BAD_REQUEST(e.message);
  return Errors.INTERNAL(e.message);
}

function insideAny(file: string, dirs: readonly string[]): boolean {
  return dirs.some((dir) => file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep));
}


function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
