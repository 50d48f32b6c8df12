/**
 * GET /v1/models: the configured models, named "provider/model", in OpenAI's list shape.
 */
import type { FastifyInstance } from 'fastify';
import type { ProviderRegistry } from '../../providers/registry.js';

/** `path` lets the drop-in /openai/v1 routes serve the same list. */
export function modelRoutes(app: FastifyInstance, providers: ProviderRegistry, path = '/v1/models'): void {
  const created = Math.floor(Date.now() / 1000);
  app.get(path, async () => ({
    object: 'list',
    data: providers.listModels().map((m) => ({ id: m.id, object: 'model', created, owned_by: m.owned_by })),
  }));
}
