/**
 * Building the gateway: config in, a fastify app with its providers, plugins and routes out. Plugins are loaded
 * before the server listens, and cleaned up (in reverse order) when it closes.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.js';
import { Errors, HeimdallError, errorBody } from '../errors.js';
import { accessLogger, createLogger, loggedPath, requestLoggerFactory } from '../logger.js';
import { dashboardFor, inspectorFor, type DashboardSource } from '../dashboard/source.js';
import { exchangeOf } from '../metrics/exchange.js';
import { configureHost, hostServices, releaseHost } from '../host/services.js';
import type { FlightRecord } from '../metrics/flight-record.js';
import { GatewayMetrics } from '../metrics/metrics.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { realFile } from '../plugins/loader.js';
import { PluginRegistry } from '../plugins/registry.js';
import { PluginWatcher } from '../plugins/watch.js';
import { createAdminApp, persistPlugins } from './admin.js';
import { Connections } from './connections.js';
import { ProviderRegistry } from '../providers/registry.js';
import { anthropicRoutes } from './routes/anthropic.js';
import { chatRoutes } from './routes/chat.js';
import { embeddingsRoutes } from './routes/embeddings.js';
import type { DashboardAsk, Pool, ReportKind } from './pool.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { modelRoutes } from './routes/models.js';
import { openaiCompatRoutes } from './routes/openai-compat.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** How long closing the admin listener waits for its connections before closing them. */
const ADMIN_CLOSE_MS = 2000;

export interface Gateway {
  app: FastifyInstance;
  /** The admin API, on its own listener; present when admin.enabled. */
  admin: FastifyInstance | undefined;
  plugins: PluginRegistry;
  providers: ProviderRegistry;
  /** Start the gateway (and the admin API) listening; resolves to their addresses. */
  listen(host?: string, port?: number): Promise<{ url: string; adminUrl: string | undefined }>;
  /** This gateway's own report for its pool: its metrics (Prometheus text), its /health body or its plugins' status. */
  report(what: ReportKind, ask?: DashboardAsk): Promise<string | Record<string, unknown>>;
  /**
   * Stop listening and close idle connections; let requests and streams in flight finish for up to `timeoutMs`
   * (server.shutdown_timeout_ms by default), then close every connection left, then Cleanup every plugin. Called
   * again while it drains, it returns the same promise; a shorter timeoutMs (0: at once) cuts the drain short.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

export interface GatewayOptions {
  /** Set when this gateway is one worker of a pool: /metrics and /health then answer for every worker. */
  pool?: Pool;
  /**
   * The logger every line goes to (default: one from config.log). Its redaction applies to every line but the
   * access line, whose fields are fixed (request id, method, path, status, time) and carry no credentials.
   */
  logger?: Logger;
  /**
   * Watch the files of plugins with watch: true (default). Off in a worker of a pool: the primary watches, and
   * reloads in every worker at once.
   */
  watch?: boolean;
  /**
   * Serve the admin API (when admin.enabled) and save its changes (admin.persist): default true. Off in a worker of
   * a pool, whose primary serves it for every worker; the dashboard's data is still kept, for the primary to gather.
   */
  serveAdmin?: boolean;
  /** In a worker of a pool: the flight record its primary reads after a crash (metrics/flight-record.ts). */
  flightRecord?: FlightRecord;
}

export async function createGateway(loaded: LoadedConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const { config } = loaded;
  const log = options.logger ?? createLogger(config.log.level);

  const metrics = new GatewayMetrics(options.flightRecord);
  // Host services for plugins (ABI 1.2), before any plugin loads: their metrics go out with the gateway's.
  const host = await configureHost(config.host, log);
  metrics.addSource(() => hostServices().renderMetrics());
  const providers = new ProviderRegistry(config.providers, process.env, (msg) => log.warn(msg), metrics.decorateProvider);
  const serveAdmin = config.admin.enabled && options.serveAdmin !== false;
  const persist = serveAdmin && config.admin.persist && loaded.file !== '';
  const plugins = new PluginRegistry(log, {
    decorate: metrics.decoratePlugin,
    onQuarantine: metrics.pluginQuarantine,
    pluginThreads: config.server.plugin_threads,
    onChange: () => {
      watcher.sync();
      if (!persist) return;
      try {
        persistPlugins(loaded.file, plugins.specs());
      } catch (err) {
        // The change itself took effect; only saving it failed, so say so rather than undo it.
        log.error({ err, file: loaded.file }, 'could not save the plugin change to the config file');
      }
    },
  });
  const watcher = new PluginWatcher(options.watch === false ? { watched: () => [], reload: async () => null } : plugins, log);
  try {
    const pluginDirs = config.admin.plugin_dirs.map((d) => realFile(path.resolve(loaded.baseDir, d)));
    await plugins.loadAll(config.plugins, loaded.baseDir, pluginDirs);
  } catch (err) {
    await providers.close();
    throw err;
  }
  watcher.sync();

  // Answers written outside fastify (timeouts, broken HTTP) count in heimdall_requests_total too, with no route.
  const connections = new Connections(config.server, log, (status) => metrics.observeRequest('', status, 0, undefined));
  const app = Fastify({
    ...connections.fastifyOptions(),
    loggerInstance: log as FastifyBaseLogger,
    // One line per request, written in onResponse below, instead of fastify's two; request_id on every line.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    childLoggerFactory: requestLoggerFactory as never,
    bodyLimit: config.server.body_limit,
    // The client's x-request-id is honoured when it is a sane identifier; plugins and logs receive it.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
  });
  connections.attach(app.server);

  // Keep the body as bytes: TransportInterceptors see it raw, and unchanged bytes can go upstream as they are.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });
  const access = config.log.requests ? accessLogger(log) : undefined;
  app.addHook('onResponse', (req, reply, done) => {
    if (access !== undefined) {
      access.info({ request_id: req.id, method: req.method, url: loggedPath(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    }
    metrics.observeRequest(req.routeOptions.url ?? '', reply.statusCode, reply.elapsedTime, exchangeOf(req));
    done();
  });

  app.setErrorHandler((err: FastifyError | HeimdallError, req, reply) => {
    const e = toHttpError(err, config.server.body_limit);
    if (e.statusCode >= 500) req.log.error({ err }, e.message);
    reply.code(e.statusCode).send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = Errors.ROUTE_NOT_FOUND(req.method, req.url);
    reply.code(e.statusCode).send(errorBody(e));
  });

  const traces = inspectorFor(config);
  const dashboard = dashboardFor(config, { plugins, metrics, traces, keys: () => providers.keyStates() });
  const pipeline = new Pipeline(plugins, providers, log, { logBodies: config.log.bodies, traces });
  chatRoutes(app, pipeline);
  embeddingsRoutes(app, pipeline);
  modelRoutes(app, providers);
  openaiCompatRoutes(app, pipeline, providers);
  anthropicRoutes(app, pipeline, providers, (err) => toHttpError(err, config.server.body_limit));
  const health = healthRoutes(app, plugins, () => connections.isDraining, options.pool);
  metricsRoutes(app, metrics, options.pool);

  let admin: FastifyInstance | undefined;
  app.addHook('onClose', async () => {
    watcher.close();
    if (admin !== undefined) {
      // Admin calls are short; a client that keeps its connection busy (a dashboard tab polling) must not hold the
      // shutdown: past ADMIN_CLOSE_MS its connections are closed.
      const force = setTimeout(() => admin?.server.closeAllConnections(), ADMIN_CLOSE_MS);
      try {
        await admin.close();
      } finally {
        clearTimeout(force);
      }
    }
    await plugins.closeAll();
    await providers.close();
    await releaseHost(host);
  });
  try {
    admin = serveAdmin ? createAdminApp({ config: config.admin, control: plugins, baseDir: loaded.baseDir, log, limits: config.server, dashboard }) : undefined;
  } catch (err) {
    await app.close(); // plugins, providers and the metrics' monitors are running already
    throw err;
  }

  return {
    app,
    admin,
    plugins,
    providers,
    listen: async (host = config.server.host, port = config.server.port) => {
      try {
        const url = await app.listen({ host, port });
        // A half-started gateway would serve without the API its operator asked for.
        const adminUrl = admin ? await admin.listen({ host: config.admin.host, port: config.admin.port }) : undefined;
        return { url, adminUrl };
      } catch (err) {
        // Plugins, providers, watchers and the metrics' monitors are running already: a port in use must not leave
        // them behind (a watched plugin would keep the process alive).
        await app.close();
        throw err;
      }
    },
    report: async (what, ask) => {
      if (what === 'dashboard') return { value: dashboard === undefined || ask === undefined ? null : await askDashboard(dashboard, ask) };
      if (what === 'metrics') return metrics.render();
      if (what === 'plugins') return { plugins: await plugins.list() };
      return health();
    },
    close: (options = {}) => connections.close(() => app.close(), options.timeoutMs),
  };
}

/** One dashboard call, as a pool's primary asks it of this worker. */
function askDashboard(source: DashboardSource, ask: DashboardAsk): Promise<unknown> {
  switch (ask.method) {
    case 'requests':
      return source.requests(Math.max(0, Math.min(ask.limit, 1000)));
    case 'request':
      return source.request(ask.id);
    default:
      return source[ask.method]();
  }
}

/** Fastify's own errors (body parsing, limits) become catalogue errors, so every answer has the same shape. */
function toHttpError(err: FastifyError | HeimdallError, bodyLimit: number): HeimdallError {
  if (err instanceof HeimdallError) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return Errors.BODY_TOO_LARGE(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return Errors.CONTENT_TYPE(String(err.message.match(/'(.*)'/)?.[1] ?? 'missing'));
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return Errors.BAD_JSON('the body is empty');
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return Errors.BAD_REQUEST(err.message);
  return Errors.INTERNAL(err.message);
}
