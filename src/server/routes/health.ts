/**
 * GET /health: liveness, and each plugin's state. Public, so it shows names, states and modes only: files, configs
 * and errors are for the admin API. A plugin whose circuit breaker is open shows "quarantined".
 *
 * GET /livez and GET /readyz, in the shape orchestrators probe (a status code, a one-word body): live while the
 * event loop answers at all (a wedged one times the probe out); ready while it takes requests, not once it drains.
 */
import type { FastifyInstance } from 'fastify';
import cluster from 'node:cluster';
import type { PluginRegistry } from '../../plugins/registry.js';

export function healthRoutes(app: FastifyInstance, plugins: PluginRegistry, draining: () => boolean = () => false): void {
  const started = Date.now();
  app.get('/livez', async (_req, reply) => reply.type('text/plain').send('ok'));
  app.get('/readyz', async (_req, reply) => {
    if (draining()) return reply.code(503).type('text/plain').send('draining');
    return reply.type('text/plain').send('ready');
  });
  // In a pool of workers (docs/workers.md), whichever worker took the request answers, and says which it is.
  const worker = cluster.isWorker && cluster.worker !== undefined ? { worker: { id: cluster.worker.id, pid: process.pid } } : {};
  app.get('/health', async () => ({
    status: 'ok',
    ...worker,
    uptime_seconds: Math.round((Date.now() - started) / 1000),
    plugins: plugins.status().map(({ name, status, language, abi_version, hooks, mode, quarantine }) => ({
      name,
      status: status === 'active' && quarantine !== undefined && quarantine.state !== 'closed' ? 'quarantined' : status,
      language,
      abi_version,
      hooks,
      mode,
    })),
  }));
}
