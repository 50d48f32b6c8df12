/**
 * GET /health: liveness, and which plugins are active. Shows names, files and states only: never configs.
 */
import type { FastifyInstance } from 'fastify';
import type { PluginRegistry } from '../../plugins/registry.js';

export function healthRoutes(app: FastifyInstance, plugins: PluginRegistry): void {
  const started = Date.now();
  app.get('/health', async () => ({
    status: 'ok',
    uptime_seconds: Math.round((Date.now() - started) / 1000),
    plugins: plugins.status(),
  }));
}
