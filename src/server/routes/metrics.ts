/**
 * GET /metrics: the gateway's metrics in the Prometheus text format, for a Prometheus server to scrape. The process
 * metrics watch the event loop and the GC from here until the gateway closes. In a pool of workers (docs/workers.md)
 * one scrape answers for every worker: each sample labelled with its worker (merge.ts), and
 * heimdall_pool_workers_unanswered counting the workers that did not answer in time.
 */
import type { FastifyInstance } from 'fastify';
import { mergeExpositions } from '../../metrics/merge.js';
import type { GatewayMetrics } from '../../metrics/metrics.js';
import type { Pool } from '../pool.js';

export function metricsRoutes(app: FastifyInstance, metrics: GatewayMetrics, pool?: Pool): void {
  metrics.watchProcess();
  app.addHook('onClose', async () => metrics.close());
  app.get('/metrics', async (_req, reply) => {
    reply.type(metrics.contentType);
    if (pool === undefined) return reply.send(await metrics.render());
    const { parts, missing } = await pool.gather('metrics');
    const merged = mergeExpositions(parts.map((p) => ({ worker: String(p.worker), text: String(p.body) })));
    return reply.send(
      `${merged}# HELP heimdall_pool_workers_unanswered Workers that did not answer this scrape in time.\n` +
        `# TYPE heimdall_pool_workers_unanswered gauge\nheimdall_pool_workers_unanswered ${missing.length}\n`,
    );
  });
}
