/**
 * POST /v1/chat/completions: HTTP in, the pipeline, HTTP out (JSON, or SSE for "stream": true). The same handler
 * serves embeddings and the drop-in /openai/v1 routes, which differ only in their PrepareOptions.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from '../../errors.js';
import { openExchange } from '../../metrics/exchange.js';
import { RequestContext } from '../../pipeline/context.js';
import type { Pipeline, PipelineRun, PrepareOptions } from '../../pipeline/pipeline.js';
import type { AbiError } from '../../plugins/plugin.js';
import { writeEventStream } from '../sse.js';

const ROUTE = '/v1/chat/completions';
const EMPTY = Buffer.alloc(0);

/** Which provider/model answered, when a fallback may have stepped in. */
export const SERVED_BY_HEADER = 'x-heimdall-served-by';

export function chatRoutes(app: FastifyInstance, pipeline: Pipeline): void {
  app.post(ROUTE, openaiHandler(pipeline, ROUTE));
}

/**
 * The handler of an OpenAI-shaped route: chat completions unless `options.operation` says embeddings; the drop-in
 * routes pass their default provider for bare model names.
 */
export function openaiHandler(pipeline: Pipeline, route: string, options: PrepareOptions = {}) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const abort = new AbortController();
    // 'close' on the response fires when the client goes away before we are done, and after every finished reply:
    // only the first is an abort. (Aborting anyway builds a DOMException with a stack: a fifth of a request's time.)
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    if (reply.raw.destroyed) abort.abort(); // gone before the handler started

    const ctx = new RequestContext(req.id, route, req.headers);
    openExchange(req, ctx, abort.signal); // for the metrics taken once the reply is sent: target and upstream time
    const run = pipeline.start(ctx, abort.signal);
    try {
      return await handle(req, reply, run, options);
    } finally {
      run.release();
    }
  };
}

async function handle(req: FastifyRequest, reply: FastifyReply, run: PipelineRun, options: PrepareOptions): Promise<FastifyReply> {
  // A POST without a body (and so without a content-type) arrives with no body at all: that is an empty one.
  const body = Buffer.isBuffer(req.body) ? req.body : EMPTY;
  const transported = run.transport(req.method, req.url, body);
  if (transported.kind === 'response') {
    reply.code(transported.status).headers(transported.headers);
    if (!reply.hasHeader('content-type')) reply.type('application/json');
    return reply.send(transported.body);
  }

  const { stream } = run.prepare(transported.body, options); // throws 4xx errors for the error handler

  if (!stream) {
    const result = options.operation === 'embeddings' ? await run.embeddings() : await run.chat();
    if (result.error !== undefined) return sendError(reply, result.error);
    if (result.servedBy !== undefined) reply.header(SERVED_BY_HEADER, result.servedBy);
    return reply.type('application/json').send(result.response.bytes());
  }

  const outcome = await run.stream();
  if (outcome.kind === 'error') return sendError(reply, outcome.error);
  reply.hijack();
  const headers: Record<string, string> = { 'x-request-id': req.id };
  if (outcome.servedBy !== undefined) headers[SERVED_BY_HEADER] = outcome.servedBy;
  await writeEventStream(reply.raw, headers, outcome.events);
  return reply;
}

export function sendError(reply: FastifyReply, error: AbiError): FastifyReply {
  const retryAfter = error.retry_after;
  if (typeof retryAfter === 'number' || typeof retryAfter === 'string') reply.header('retry-after', String(retryAfter));
  return reply.code(error.status_code).send(errorBody(error));
}
