/**
 * POST /anthropic/v1/messages: the drop-in route for Anthropic's clients (@anthropic-ai/sdk with its base URL set
 * to http://gateway/anthropic). The Messages request is translated into the canonical request and runs through the
 * same pipeline as every route (TransportInterceptor on the raw request, then PreHooks, provider, PostHooks on the
 * canonical one); the answer goes back in Anthropic's own response, stream-event and error shapes, whichever
 * provider served it. Bare model names belong to the provider named "anthropic" (or the first Anthropic provider).
 * A streamed answer's events are made from each chunk's parsed value: the chunks' text is not read here.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { formatPath } from '../../config/load.js';
import { Errors, type HeimdallError } from '../../errors.js';
import type { Pipeline, PipelineRun } from '../../pipeline/pipeline.js';
import type { AbiError } from '../../plugins/plugin.js';
import { anthropicError, EventWriter, toCanonical, toMessage, type SseFrame } from '../../providers/anthropic/inbound.js';
import { messagesRequest, type MessagesRequest } from '../../providers/anthropic/wire.js';
import { parseJsonBody } from '../../payload.js';
import type { ProviderRegistry } from '../../providers/registry.js';
import { writeEventStream, type EventFraming } from '../sse.js';
import { pipelineHandler, SERVED_BY_HEADER, streamHeaders } from '../pipeline-route.js';
import { setRetryAfter } from './chat.js';

const ROUTE = '/anthropic/v1/messages';

export function anthropicRoutes(
  app: FastifyInstance,
  pipeline: Pipeline,
  providers: ProviderRegistry,
  /** The gateway's mapping of fastify's own errors (body limits, content types) to catalogue errors. */
  toHttpError: (err: FastifyError | HeimdallError) => HeimdallError,
): void {
  const defaultProvider = providers.defaultFor('anthropic', ['anthropic']);
  // Its own scope, so that every error on this route, body parsing included, is answered in Anthropic's shape.
  void app.register(async (scope) => {
    scope.setErrorHandler((err: FastifyError | HeimdallError, req, reply) => {
      const e = toHttpError(err);
      if (e.statusCode >= 500) req.log.error({ err }, e.message);
      return sendError(reply, { status_code: e.statusCode, message: e.message, code: e.code });
    });
    scope.post(ROUTE, pipelineHandler(pipeline, ROUTE, (req, reply, run, body) => handle(req, reply, run, body, defaultProvider)));
  });
}

async function handle(
  req: FastifyRequest,
  reply: FastifyReply,
  run: PipelineRun,
  body: Buffer,
  defaultProvider: string | undefined,
): Promise<FastifyReply> {
  const request = parseMessagesRequest(body);
  const { stream } = run.prepare(toCanonical(request), { defaultProvider });

  if (!stream) {
    const result = await run.chat();
    if (result.error !== undefined) return sendError(reply, result.error);
    if (result.servedBy !== undefined) reply.header(SERVED_BY_HEADER, result.servedBy);
    return reply.type('application/json').send(toMessage(result.response.value(), request.model));
  }

  const outcome = await run.stream();
  if (outcome.kind === 'error') return sendError(reply, outcome.error);
  reply.hijack();
  await writeEventStream(reply.raw, streamHeaders(req, outcome.servedBy), outcome.events, anthropicFraming(new EventWriter(request.model)));
  return reply;
}

function parseMessagesRequest(body: Buffer): MessagesRequest {
  const parsed = messagesRequest.safeParse(parseJsonBody(body));
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ');
    throw Errors.BAD_REQUEST(`not a valid Messages request: ${issues}`);
  }
  return parsed.data;
}

function sendError(reply: FastifyReply, error: AbiError): FastifyReply {
  setRetryAfter(reply, error.retry_after);
  return reply.code(error.status_code).type('application/json').send(anthropicError(error));
}

/** Anthropic's SSE: `event: <type>` and `data: <json>` per event; a failure part-way is an `error` event. */
function anthropicFraming(writer: EventWriter): EventFraming {
  const text = (frames: SseFrame[]) => frames.map((f) => `event: ${f.event}\ndata: ${JSON.stringify(f.data)}\n\n`).join('');
  return {
    chunk: (chunk) => text(writer.chunk(chunk.value)),
    done: () => text(writer.end()),
    error: (error) => text([{ event: 'error', data: anthropicError(error) }]),
  };
}
