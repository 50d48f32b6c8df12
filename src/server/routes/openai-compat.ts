/**
 * The drop-in OpenAI routes: /openai/v1/chat/completions, /openai/v1/embeddings and /openai/v1/models, so the
 * official openai client works against Heimdall with only its base URL changed. Model names may then be bare
 * ("gpt-4o-mini"): they belong to the provider named "openai", or else the first OpenAI-format provider configured.
 * "provider/model" names still reach any provider, and plugins see every request as "provider/model".
 */
import type { FastifyInstance } from 'fastify';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { ProviderRegistry } from '../../providers/registry.js';
import { openaiHandler } from './chat.js';
import { modelRoutes } from './models.js';

const PREFIX = '/openai/v1';

export function openaiCompatRoutes(app: FastifyInstance, pipeline: Pipeline, providers: ProviderRegistry): void {
  const defaultProvider = providers.defaultFor('openai', ['openai', 'azure', 'groq', 'mistral', 'together', 'deepseek', 'openrouter', 'ollama', 'vllm']);
  app.post(`${PREFIX}/chat/completions`, openaiHandler(pipeline, `${PREFIX}/chat/completions`, { defaultProvider }));
  app.post(`${PREFIX}/embeddings`, openaiHandler(pipeline, `${PREFIX}/embeddings`, { operation: 'embeddings', defaultProvider }));
  modelRoutes(app, providers, `${PREFIX}/models`);
}
