/**
 * GET /metrics: the gateway's metrics in the Prometheus text format, for a Prometheus server to scrape. The process
 * metrics watch the event loop and the GC from here until the gateway closes.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../../metrics/metrics.js';

export function metricsRoutes(app: FastifyInstance, metrics: GatewayMetrics): void {
  metrics.watchProcess();
  app.addHook('onClose', async () => metrics.close());
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));
}
