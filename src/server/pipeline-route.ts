/**
 * What every route that runs the plugin pipeline does around its own request and answer shapes: a cancellation
 * signal tied to the client, the request context, the metrics exchange, the lease on the plugin instances (always
 * released), the TransportInterceptor pass with its possible early answer, and the headers of a streamed answer.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Cancellation } from '../cancel.js';
import { openExchange } from '../metrics/exchange.js';
import { RequestContext } from '../pipeline/context.js';
import type { Pipeline, PipelineRun } from '../pipeline/pipeline.js';
import type { UpstreamMeta } from '../providers/provider.js';

/** Which provider/model answered, when a fallback may have stepped in. */
export const SERVED_BY_HEADER = 'x-heimdall-served-by';

const EMPTY = Buffer.alloc(0);

/**
 * A fastify handler that starts a pipeline run for `route` and hands it, with the request's body after every
 * TransportInterceptor, to `handle`; a TransportInterceptor's own answer is sent instead.
 */
export function pipelineHandler(
  pipeline: Pipeline,
  route: string,
  handle: (req: FastifyRequest, reply: FastifyReply, run: PipelineRun, body: Buffer) => Promise<FastifyReply>,
) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const cancel = new Cancellation();
    // 'close' fires when the client goes away before we are done, and after every finished reply: only the first
    // is an abort. (Aborting anyway would build an error with a stack for nothing.)
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) cancel.abort();
    });
    if (reply.raw.destroyed) cancel.abort(); // gone before the handler started

    const ctx = new RequestContext(req.id, route, req.headers);
    openExchange(req, ctx, cancel); // for the metrics taken once the reply is sent: target and upstream time
    const run = pipeline.start(ctx, cancel);
    try {
      // A POST without a body (and so without a content-type) arrives with no body at all: that is an empty one.
      let transported = run.transport(req.method, req.url, Buffer.isBuffer(req.body) ? req.body : EMPTY);
      if (transported instanceof Promise) transported = await transported;
      if (transported.kind === 'response') {
        reply.code(transported.status).headers(transported.headers);
        if (!reply.hasHeader('content-type')) reply.type('application/json');
        return await reply.send(transported.body);
      }
      return await handle(req, reply, run, transported.body);
    } finally {
      run.trace?.finish(reply.statusCode);
      run.release();
    }
  };
}

/** The request fields a translation left out, when the provider's drop_unsupported allowed it: comma-separated. */
export const DROPPED_HEADER = 'x-heimdall-dropped';

/** The headers a hijacked, streamed answer starts with. */
export function streamHeaders(req: FastifyRequest, servedBy: string | undefined, meta?: UpstreamMeta): Record<string, string> {
  const headers: Record<string, string> = { ...upstreamHeaders(meta), 'x-request-id': req.id };
  if (servedBy !== undefined) headers[SERVED_BY_HEADER] = servedBy;
  return headers;
}

/** The longest x-heimdall-dropped value: more fields than fit are counted, not named. */
const MAX_DROPPED_CHARS = 1024;

/** The fields, as many as fit, then how many more there were. */
function droppedValue(fields: readonly string[]): string {
  let out = '';
  for (const [i, field] of fields.entries()) {
    const next = out === '' ? field : `${out}, ${field}`;
    if (next.length > MAX_DROPPED_CHARS) return `${out}, and ${fields.length - i} more`;
    out = next;
  }
  return out;
}

/** The upstream's relayed headers (rate limits, its request id) and the dropped fields, for an answer or an error. */
export function upstreamHeaders(meta: UpstreamMeta | undefined): Record<string, string> {
  if (meta === undefined) return {};
  const headers = meta.headers === undefined ? {} : { ...meta.headers };
  if (meta.dropped.length > 0) headers[DROPPED_HEADER] = droppedValue(meta.dropped);
  return headers;
}
