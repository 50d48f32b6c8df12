/**
 * GET /health: liveness, and each plugin's state. Public, so it shows names, states and modes only: files, configs
 * and errors are for the admin API. A plugin whose circuit breaker is open shows "quarantined". In a pool of workers
 * (docs/workers.md) it answers for the pool: each worker's own body under `workers`, and the workers that did not
 * answer in time under `missing` (then the status is "degraded").
 *
 * GET /livez and GET /readyz, in the shape orchestrators probe (a status code, a one-word body): live while the
 * event loop answers at all (a wedged one times the probe out); ready while it takes requests, not once it drains.
 * They describe the worker that answers: each worker is a process an orchestrator's probe may reach.
 */
import type { FastifyInstance } from 'fastify';
import cluster from 'node:cluster';
import type { PluginRegistry } from '../../plugins/registry.js';
import type { Pool } from '../pool.js';

/** Registers the routes; returns this gateway's own /health body, for its pool's gatherings. */
export function healthRoutes(
  app: FastifyInstance,
  plugins: PluginRegistry,
  draining: () => boolean = () => false,
  pool?: Pool,
): () => Record<string, unknown> {
  const started = Date.now();
  const worker = cluster.isWorker && cluster.worker !== undefined ? { worker: { id: cluster.worker.id, pid: process.pid } } : {};
  const own = () => ({
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
  });
  app.get('/livez', async (_req, reply) => reply.type('text/plain').send('ok'));
  app.get('/readyz', async (_req, reply) => {
    if (draining()) return reply.code(503).type('text/plain').send('draining');
    return reply.type('text/plain').send('ready');
  });
  app.get('/health', async () => {
    if (pool === undefined) return own();
    const { parts, missing } = await pool.gather('health');
    return { status: missing.length === 0 ? 'ok' : 'degraded', ...worker, workers: parts.map((p) => p.body), missing };
  });
  return own;
}
