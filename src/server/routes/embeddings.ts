/**
 * POST /v1/embeddings: the OpenAI embeddings request through the same pipeline as chat (plugins see the request
 * and the response), for every provider whose wire format has embeddings (OpenAI and compatibles, Azure, Gemini).
 */
import type { FastifyInstance } from 'fastify';
import type { Pipeline } from '../../pipeline/pipeline.js';
import { openaiHandler } from './chat.js';

const ROUTE = '/v1/embeddings';

export function embeddingsRoutes(app: FastifyInstance, pipeline: Pipeline): void {
  app.post(ROUTE, openaiHandler(pipeline, ROUTE, { operation: 'embeddings' }));
}
