/**
 * POST /v1/chat/completions: HTTP in, the pipeline, HTTP out (JSON, or SSE for "stream": true). The same handler
 * serves embeddings and the drop-in /openai/v1 routes, which differ only in their PrepareOptions.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from '../../errors.js';
import type { Pipeline, PipelineRun, PrepareOptions } from '../../pipeline/pipeline.js';
import { isHeaderValue } from '../../plugins/actions.js';
import type { AbiError, Json } from '../../plugins/plugin.js';
import { pipelineHandler, SERVED_BY_HEADER, streamHeaders, upstreamHeaders } from '../pipeline-route.js';
import { writeEventStream } from '../sse.js';

const ROUTE = '/v1/chat/completions';

export function chatRoutes(app: FastifyInstance, pipeline: Pipeline): void {
  app.post(ROUTE, openaiHandler(pipeline, ROUTE));
}

/**
 * The handler of an OpenAI-shaped route: chat completions unless `options.operation` says embeddings; the drop-in
 * routes pass their default provider for bare model names.
 */
export function openaiHandler(pipeline: Pipeline, route: string, options: PrepareOptions = {}) {
  return pipelineHandler(pipeline, route, (req, reply, run, body) => handle(req, reply, run, body, options));
}

async function handle(req: FastifyRequest, reply: FastifyReply, run: PipelineRun, body: Buffer, options: PrepareOptions): Promise<FastifyReply> {
  const { stream } = run.prepare(body, options); // throws 4xx errors for the error handler

  if (!stream) {
    const result = options.operation === 'embeddings' ? await run.embeddings() : await run.chat();
    reply.headers(upstreamHeaders(result.meta));
    if (result.error !== undefined) return sendError(reply, result.error);
    if (result.servedBy !== undefined) reply.header(SERVED_BY_HEADER, result.servedBy);
    return reply.type('application/json').send(result.response.bytes());
  }

  const outcome = await run.stream();
  if (outcome.kind === 'error') return sendError(reply.headers(upstreamHeaders(outcome.meta)), outcome.error);
  reply.hijack();
  await writeEventStream(reply.raw, streamHeaders(req, outcome.servedBy, outcome.meta), outcome.events);
  return reply;
}

export function sendError(reply: FastifyReply, error: AbiError): FastifyReply {
  setRetryAfter(reply, error.retry_after);
  return reply.code(error.status_code).send(errorBody(error));
}

/**
 * The error's retry_after as the retry-after header, when it is a number or a string HTTP can carry. A plugin's was
 * checked when its output was decoded; this keeps any other from making Node throw, and the answer a bare 500.
 */
export function setRetryAfter(reply: FastifyReply, retryAfter: Json | undefined): void {
  const value = typeof retryAfter === 'number' ? String(retryAfter) : retryAfter;
  if (typeof value === 'string' && isHeaderValue(value)) reply.header('retry-after', value);
}
