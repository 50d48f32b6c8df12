/**
 * The Anthropic Messages API's shapes, as zod schemas (the types follow from them). Objects are loose: fields
 * Heimdall does not know pass validation and travel on (inbound.ts carries them into the canonical request),
 * rather than refusing a request or an answer because Anthropic added something. What is checked is what Anthropic
 * itself refuses: a block without its required fields, a bad cache_control, a tool with neither a schema nor a
 * server type, enabled thinking without a budget.
 */
import { z } from 'zod';

const json = z.record(z.string(), z.unknown());

/** `{"type": "ephemeral", "ttl": "1h"}`: where a prompt-cache prefix ends. Allowed on nearly every block and tool. */
export const cacheControl = z.looseObject({ type: z.literal('ephemeral'), ttl: z.enum(['5m', '1h']).optional() });
export type CacheControl = z.infer<typeof cacheControl>;

export const textBlock = z.looseObject({
  type: z.literal('text'),
  text: z.string(),
  cache_control: cacheControl.nullish(),
  citations: z.array(json).nullish(),
});
export type TextBlock = z.infer<typeof textBlock>;

export const imageSource = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('base64'), media_type: z.string(), data: z.string() }),
  z.looseObject({ type: z.literal('url'), url: z.string() }),
]);

export const imageBlock = z.looseObject({ type: z.literal('image'), source: imageSource, cache_control: cacheControl.nullish() });
export type ImageBlock = z.infer<typeof imageBlock>;

export const documentBlock = z.looseObject({
  type: z.literal('document'),
  source: z.discriminatedUnion('type', [
    z.looseObject({ type: z.literal('base64'), media_type: z.string(), data: z.string() }),
    z.looseObject({ type: z.literal('text'), media_type: z.string(), data: z.string() }),
    z.looseObject({ type: z.literal('url'), url: z.string() }),
    z.looseObject({ type: z.literal('content'), content: z.union([z.string(), z.array(json)]) }),
    z.looseObject({ type: z.literal('file'), file_id: z.string() }),
  ]),
  title: z.string().nullish(),
  context: z.string().nullish(),
  citations: json.nullish(),
  cache_control: cacheControl.nullish(),
});
export type DocumentBlock = z.infer<typeof documentBlock>;

export const toolUseBlock = z.looseObject({
  type: z.literal('tool_use'),
  id: z.string(),
  name: z.string(),
  input: z.unknown(),
  cache_control: cacheControl.nullish(),
});

export const thinkingBlock = z.looseObject({ type: z.literal('thinking'), thinking: z.string(), signature: z.string() });
export const redactedThinkingBlock = z.looseObject({ type: z.literal('redacted_thinking'), data: z.string() });

/** The block types Heimdall translates; every other type (server tool results, search results...) travels as is. */
export const KNOWN_BLOCKS = ['text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'] as const;

/** A block of a type Heimdall does not translate: carried verbatim (canonical extension, docs/abi.md). */
export const otherBlock = z.looseObject({
  type: z.string().refine((t) => !(KNOWN_BLOCKS as readonly string[]).includes(t), { message: 'malformed block of a known type' }),
});
export type OtherBlock = z.infer<typeof otherBlock>;

export const toolResultContent = z.union([textBlock, imageBlock, documentBlock, otherBlock]);
export type ToolResultContent = z.infer<typeof toolResultContent>;

export const toolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.union([z.string(), z.array(toolResultContent)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl.nullish(),
});

export const contentBlockParam = z.union([
  z.discriminatedUnion('type', [textBlock, imageBlock, documentBlock, toolUseBlock, toolResultBlock, thinkingBlock, redactedThinkingBlock]),
  otherBlock,
]);

export const messageParam = z.looseObject({
  role: z.enum(['user', 'assistant']),
  content: z.union([z.string(), z.array(contentBlockParam)]),
});

const toolParam = z
  .looseObject({
    name: z.string().min(1),
    description: z.string().optional(),
    /** Absent for Anthropic's server tools (web search...), which are named by `type` instead. */
    input_schema: json.optional(),
    type: z.string().nullish(),
    cache_control: cacheControl.nullish(),
  })
  .refine((t) => t.input_schema !== undefined || (typeof t.type === 'string' && t.type !== 'custom'), {
    message: 'a tool needs "input_schema" (or a server tool\'s "type")',
  });
export type ToolParam = z.infer<typeof toolParam>;

const toolChoice = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
  z.looseObject({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
  z.looseObject({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
  z.looseObject({ type: z.literal('none') }),
]);

/** `{"type": "enabled", "budget_tokens": 2048}`, `{"type": "disabled"}`, or a later kind, passed on as it is. */
const thinkingParam = z.union([
  z.looseObject({ type: z.literal('enabled'), budget_tokens: z.number().int().positive() }),
  z.looseObject({ type: z.string().refine((t) => t !== 'enabled', { message: '"enabled" thinking needs "budget_tokens"' }) }),
]);

export const messagesRequest = z.looseObject({
  model: z.string().min(1),
  max_tokens: z.number().int().positive(),
  messages: z.array(messageParam).min(1),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  stop_sequences: z.array(z.string()).optional(),
  temperature: z.number().optional(),
  top_p: z.number().optional(),
  top_k: z.number().int().optional(),
  stream: z.boolean().optional(),
  tools: z.array(toolParam).optional(),
  tool_choice: toolChoice.optional(),
  thinking: thinkingParam.optional(),
  service_tier: z.string().optional(),
  metadata: z.looseObject({ user_id: z.string().nullish() }).optional(),
  /** Heimdall's own: fallback models, as on the OpenAI routes. */
  fallbacks: z.array(z.string()).optional(),
});

export type MessagesRequest = z.infer<typeof messagesRequest>;
export type ContentBlockParam = z.infer<typeof contentBlockParam>;

export const usage = z.looseObject({
  input_tokens: z.number().nullish(),
  output_tokens: z.number().nullish(),
  cache_creation_input_tokens: z.number().nullish(),
  cache_read_input_tokens: z.number().nullish(),
});
export type Usage = z.infer<typeof usage>;

/** A response content block: the kinds Heimdall translates, and any other (left out of the translation). */
const responseBlock = z.union([textBlock, toolUseBlock, thinkingBlock, redactedThinkingBlock, z.looseObject({ type: z.string() })]);
export type ResponseBlock = z.infer<typeof responseBlock>;

export const message = z.looseObject({
  id: z.string(),
  model: z.string(),
  content: z.array(responseBlock),
  stop_reason: z.string().nullish(),
  stop_sequence: z.string().nullish(),
  usage: usage.optional(),
});
export type Message = z.infer<typeof message>;

export const streamEvent = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('message_start'), message: z.looseObject({ id: z.string(), model: z.string(), usage: usage.optional() }) }),
  z.looseObject({ type: z.literal('content_block_start'), index: z.number(), content_block: responseBlock }),
  z.looseObject({
    type: z.literal('content_block_delta'),
    index: z.number(),
    delta: z.union([
      z.looseObject({ type: z.literal('text_delta'), text: z.string() }),
      z.looseObject({ type: z.literal('input_json_delta'), partial_json: z.string() }),
      z.looseObject({ type: z.literal('thinking_delta'), thinking: z.string() }),
      z.looseObject({ type: z.literal('signature_delta'), signature: z.string() }),
      z.looseObject({ type: z.string() }),
    ]),
  }),
  z.looseObject({ type: z.literal('content_block_stop'), index: z.number() }),
  z.looseObject({ type: z.literal('message_delta'), delta: z.looseObject({ stop_reason: z.string().nullish(), stop_sequence: z.string().nullish() }), usage: usage.optional() }),
  z.looseObject({ type: z.literal('message_stop') }),
  z.looseObject({ type: z.literal('ping') }),
  z.looseObject({ type: z.literal('error'), error: z.looseObject({ type: z.string().optional(), message: z.string().optional() }) }),
]);
export type StreamEvent = z.infer<typeof streamEvent>;

/** Anthropic's stop reasons and the OpenAI finish reasons they mean. */
export const FINISH_REASONS: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

/** And back, for the drop-in route. */
export const STOP_REASONS: Record<string, string> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  function_call: 'tool_use',
  content_filter: 'refusal',
};

/**
 * The tool that stands for OpenAI's `response_format` on an Anthropic upstream: the request forces it, and its
 * input comes back as the message's text (request.ts, response.ts).
 */
export const JSON_OUTPUT_TOOL = 'heimdall_json_output';
