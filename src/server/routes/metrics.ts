/**
 * GET /metrics: the gateway's metrics in the Prometheus text format, for a Prometheus server to scrape.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayMetrics } from '../../metrics/metrics.js';

export function metricsRoutes(app: FastifyInstance, metrics: GatewayMetrics): void {
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));
}
