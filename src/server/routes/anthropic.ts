/**
 * The drop-in routes for Anthropic's clients (@anthropic-ai/sdk with its base URL set to http://gateway/anthropic):
 *
 *   POST /anthropic/v1/messages               the Messages API, through the plugin pipeline
 *   POST /anthropic/v1/messages/count_tokens  the upstream's token count (Anthropic upstreams only; no plugins)
 *   GET  /anthropic/v1/models[/:id]           the configured models, in Anthropic's list shape
 *
 * A Messages request is translated into the canonical request and runs through the same pipeline as every route
 * (TransportInterceptor on the raw request, then PreHooks, provider, PostHooks on the canonical one). The answer
 * goes back in Anthropic's own shapes, whichever provider served it. When an Anthropic upstream served it and no
 * plugin changed anything, that is the upstream's own answer, byte for byte: the client's bytes went upstream
 * (the provider's lossless path), and the upstream's message, or its stream events, come back as they were.
 * Bare model names belong to the provider named "anthropic" (or the first Anthropic provider).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Cancellation } from '../../cancel.js';
import { formatPath } from '../../config/load.js';
import { Errors, HeimdallError, upstreamInfo } from '../../errors.js';
import { Payload, parseJsonBody } from '../../payload.js';
import { toAbiError, type Pipeline, type PipelineRun } from '../../pipeline/pipeline.js';
import type { AbiError, JsonObject } from '../../plugins/plugin.js';
import { anthropicErrorType, EventWriter, toCanonical, toMessage, type SseFrame } from '../../providers/anthropic/inbound.js';
import { FORWARDED_HEADERS } from '../../providers/anthropic/provider.js';
import { messagesRequest, type MessagesRequest } from '../../providers/anthropic/wire.js';
import { newUpstreamMeta, type NativeRequest } from '../../providers/provider.js';
import type { ProviderRegistry } from '../../providers/registry.js';
import { writeEventStream, type EventFraming } from '../sse.js';
import { pipelineHandler, SERVED_BY_HEADER, streamHeaders, upstreamHeaders } from '../pipeline-route.js';
import { setRetryAfter } from './chat.js';

const PREFIX = '/anthropic/v1';
const ROUTE = `${PREFIX}/messages`;
/** Anthropic's own error types: an upstream's is kept when it is one of these, else one follows from the status. */
const ERROR_TYPES = new Set([
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'api_error',
  'overloaded_error',
  'billing_error',
  'timeout_error',
]);

export function anthropicRoutes(
  app: FastifyInstance,
  pipeline: Pipeline,
  providers: ProviderRegistry,
  /** The gateway's mapping of fastify's own errors (body limits, content types) to catalogue errors. */
  toHttpError: (err: FastifyError | HeimdallError) => HeimdallError,
): void {
  const defaultProvider = providers.defaultFor('anthropic', ['anthropic']);
  // Its own scope, so that every error on these routes, body parsing included, is answered in Anthropic's shape.
  void app.register(async (scope) => {
    scope.setErrorHandler((err: FastifyError | HeimdallError, req, reply) => {
      const e = toHttpError(err);
      if (e.statusCode >= 500) req.log.error({ err }, e.message);
      return sendError(reply, toAbiError(e));
    });
    scope.post(ROUTE, pipelineHandler(pipeline, ROUTE, (req, reply, run, body) => handle(req, reply, run, body, defaultProvider)));
    const COUNT = `${ROUTE}/count_tokens`;
    scope.post(COUNT, pipelineHandler(pipeline, COUNT, (_req, reply, run, body) => countTokens(reply, run, body, providers, defaultProvider)));
    scope.get(`${PREFIX}/models`, async () => modelList(providers));
    scope.get<{ Params: { id: string } }>(`${PREFIX}/models/*`, async (req) => {
      const id = (req.params as Record<string, string>)['*'] ?? '';
      const model = modelList(providers).data.find((m) => m.id === id);
      if (model === undefined) throw Errors.MODEL_UNKNOWN(id, providers.listModels().map((m) => m.id));
      return model;
    });
  });
}

async function handle(
  req: FastifyRequest,
  reply: FastifyReply,
  run: PipelineRun,
  body: Buffer,
  defaultProvider: string | undefined,
): Promise<FastifyReply> {
  const { request, raw } = parseMessagesRequest(body);
  const native = nativeRequest(run, raw as JsonObject);
  const { stream } = run.prepare(toCanonical(request), { defaultProvider, native });

  if (!stream) {
    const result = await run.chat();
    reply.headers(upstreamHeaders(result.meta));
    if (result.error !== undefined) return sendError(reply, result.error);
    if (result.servedBy !== undefined) reply.header(SERVED_BY_HEADER, result.servedBy);
    const answer = result.response;
    reply.type('application/json');
    return reply.send(answer.native?.format === 'anthropic' ? answer.native.bytes : toMessage(answer.value(), request.model));
  }

  const outcome = await run.stream();
  if (outcome.kind === 'error') return sendError(reply.headers(upstreamHeaders(outcome.meta)), outcome.error);
  reply.hijack();
  const framing = anthropicFraming(new EventWriter(request.model), outcome.untouched === true);
  await writeEventStream(reply.raw, streamHeaders(req, outcome.servedBy, outcome.meta), outcome.events, framing);
  return reply;
}

/** The request, checked, and the JSON it was checked from. */
function parseMessagesRequest(body: Buffer): { request: MessagesRequest; raw: unknown } {
  const raw = parseJsonBody(body);
  const parsed = messagesRequest.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const issues = parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ');
    const err = Errors.BAD_REQUEST(`not a valid Messages request: ${issues}`);
    if (first !== undefined && first.path.length > 0) err.param = formatPath(first.path);
    throw err;
  }
  return { request: parsed.data, raw };
}

/**
 * The client's request for the provider's lossless path, without the gateway's own `fallbacks`, and the headers it
 * forwards as they are after TransportInterceptors (a plugin that removes anthropic-beta removes it upstream too).
 */
function nativeRequest(run: PipelineRun, raw: JsonObject): NativeRequest {
  let value = raw;
  if (raw.fallbacks !== undefined) {
    const { fallbacks: _, ...rest } = raw;
    value = rest;
  }
  const headers: Record<string, string> = {};
  const seen = run.ctx.allHeaders;
  for (const name of FORWARDED_HEADERS) {
    const v = seen[name];
    if (typeof v === 'string') headers[name] = v;
    else if (Array.isArray(v)) headers[name] = v.join(',');
  }
  return { format: 'anthropic', value, headers };
}

/**
 * count_tokens runs the TransportInterceptors (authentication, rate limits and audit plugins see it), but no
 * PreHook or PostHook: it is not a model call, and has no answer to hook. The upstream's count, or a 400 naming the
 * provider when it can't count.
 */
async function countTokens(
  reply: FastifyReply,
  run: PipelineRun,
  body: Buffer,
  providers: ProviderRegistry,
  defaultProvider: string | undefined,
): Promise<FastifyReply> {
  const value = parseJsonBody(body);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw Errors.BAD_REQUEST('the request body must be a JSON object');
  const request = value as JsonObject;
  if (!Array.isArray(request.messages)) throw Errors.BAD_REQUEST('"messages" must be an array of messages');
  const target = providers.resolve(request.model, defaultProvider);
  const provider = target.provider;
  if (provider.countTokens === undefined) {
    throw Errors.PROVIDER_UNSUPPORTED(provider.name, 'count_tokens (only Anthropic upstreams count tokens)');
  }
  const cancel = new Cancellation();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) cancel.abort();
  });
  const meta = newUpstreamMeta();
  const native = nativeRequest(run, request);
  let answer: Payload;
  try {
    answer = await provider.countTokens({ model: target.model, request: Payload.fromBytes(body, request), unchanged: true, signal: cancel, meta, native });
  } catch (err) {
    return sendError(reply.headers(upstreamHeaders(meta)), toAbiError(err));
  }
  return reply.headers(upstreamHeaders(meta)).type('application/json').send(answer.bytes());
}

function modelList(providers: ProviderRegistry) {
  const data = providers.listModels().map((m) => ({ type: 'model', id: m.id, display_name: m.id, created_at: STARTED }));
  return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}

const STARTED = new Date().toISOString();

function sendError(reply: FastifyReply, error: AbiError): FastifyReply {
  setRetryAfter(reply, error.retry_after);
  return reply.code(error.status_code).type('application/json').send(anthropicErrorBody(error));
}

/**
 * Anthropic's error body. An upstream's own error type is kept when Anthropic's SDK knows it (an Anthropic
 * upstream's overloaded_error stays that); the gateway's code stays visible as `error.code`.
 */
export function anthropicErrorBody(error: AbiError): JsonObject {
  const upstream = upstreamInfo(error.upstream);
  const type = upstream?.type !== undefined && ERROR_TYPES.has(upstream.type) ? upstream.type : anthropicErrorType(error.status_code);
  const body: JsonObject = { type, message: error.message };
  if (typeof error.code === 'string') body.code = error.code;
  return { type: 'error', error: body };
}

/**
 * Anthropic's SSE: `event: <type>` and `data: <json>` per event; a failure part-way is an `error` event. When the
 * chunks are the provider's own (`untouched`) and carry the upstream's events, those are written as they came;
 * otherwise each chunk is translated.
 */
function anthropicFraming(writer: EventWriter, untouched: boolean): EventFraming {
  const text = (frames: SseFrame[]) => frames.map((f) => `event: ${f.event}\ndata: ${JSON.stringify(f.data)}\n\n`).join('');
  let native: boolean | undefined;
  return {
    chunk: (chunk) => {
      native ??= untouched && chunk.native !== undefined;
      return native ? (chunk.native ?? '') : text(writer.chunk(chunk.value));
    },
    done: () => (native === true ? '' : text(writer.end())),
    error: (error) => text([{ event: 'error', data: anthropicErrorBody(error) }]),
  };
}
