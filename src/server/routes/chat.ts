/**
 * POST /v1/chat/completions: HTTP in, the pipeline, HTTP out (JSON, or SSE for "stream": true).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from '../../errors.js';
import { RequestContext } from '../../pipeline/context.js';
import type { Pipeline, PipelineRun } from '../../pipeline/pipeline.js';
import type { AbiError } from '../../plugins/plugin.js';
import { writeEventStream } from '../sse.js';

const ROUTE = '/v1/chat/completions';
const EMPTY = Buffer.alloc(0);

export function chatRoutes(app: FastifyInstance, pipeline: Pipeline): void {
  app.post(ROUTE, async (req: FastifyRequest, reply: FastifyReply) => {
    const abort = new AbortController();
    // 'close' on the response fires when the client goes away before we are done (and after we finish, harmlessly).
    reply.raw.on('close', () => abort.abort());

    const ctx = new RequestContext(req.id, ROUTE, req.headers);
    const run = pipeline.start(ctx, abort.signal);
    try {
      return await handle(req, reply, run);
    } finally {
      run.release();
    }
  });
}

async function handle(req: FastifyRequest, reply: FastifyReply, run: PipelineRun): Promise<FastifyReply> {
  // A POST without a body (and so without a content-type) arrives with no body at all: that is an empty one.
  const body = Buffer.isBuffer(req.body) ? req.body : EMPTY;
  const transported = run.transport(req.method, req.url, body);
  if (transported.kind === 'response') {
    reply.code(transported.status).headers(transported.headers);
    if (!reply.hasHeader('content-type')) reply.type('application/json');
    return reply.send(transported.body);
  }

  const { stream } = run.prepare(transported.body); // throws 4xx errors for the error handler

  if (!stream) {
    const result = await run.chat();
    if (result.error !== undefined) return sendError(reply, result.error);
    return reply.type('application/json').send(result.response.bytes());
  }

  const outcome = await run.stream();
  if (outcome.kind === 'error') return sendError(reply, outcome.error);
  reply.hijack();
  await writeEventStream(reply.raw, { 'x-request-id': req.id }, outcome.events);
  return reply;
}

export function sendError(reply: FastifyReply, error: AbiError): FastifyReply {
  const retryAfter = error.retry_after;
  if (typeof retryAfter === 'number' || typeof retryAfter === 'string') reply.header('retry-after', String(retryAfter));
  return reply.code(error.status_code).send(errorBody(error));
}
