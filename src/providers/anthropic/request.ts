/**
 * The canonical (OpenAI chat) request as an Anthropic Messages request: system and developer messages become
 * `system`; tool results become user turns of tool_result blocks; consecutive turns of one role merge (the Messages
 * API wants them alternating); images become base64 or URL sources; tools, tool_choice, stop and max_tokens are
 * renamed. What has no Messages equivalent (n > 1, logprobs, response_format) is left out or refused.
 */
import { Errors } from '../../errors.js';
import type { JsonObject } from '../../plugins/plugin.js';
import { maxTokens, numberField, readMessages, readToolChoice, readTools, stopSequences, type Part } from '../canonical.js';

type Block = JsonObject;
interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}

export function toMessagesRequest(request: JsonObject, model: string, defaultMaxTokens: number, stream: boolean, provider: string): JsonObject {
  if (typeof request.n === 'number' && request.n > 1) throw Errors.PROVIDER_UNSUPPORTED(provider, '"n" greater than 1');
  const system: string[] = [];
  const turns: Turn[] = [];
  const push = (role: Turn['role'], blocks: Block[]) => {
    const last = turns.at(-1);
    if (last !== undefined && last.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };
  for (const m of readMessages(request)) {
    switch (m.role) {
      case 'system':
        system.push(m.text);
        break;
      case 'user':
        push('user', m.parts.map(block));
        break;
      case 'assistant':
        push('assistant', [
          ...m.parts.map(block).filter((b) => b.type !== 'text' || b.text !== ''),
          ...m.toolCalls.map((c) => ({ type: 'tool_use', id: c.id, name: c.name, input: c.args })),
        ]);
        break;
      case 'tool':
        push('user', [{ type: 'tool_result', tool_use_id: m.toolCallId, content: m.text }]);
        break;
    }
  }

  const out: JsonObject = {
    model,
    max_tokens: maxTokens(request) ?? defaultMaxTokens,
    messages: turns.map((t) => ({ role: t.role, content: t.content })),
  };
  if (system.length > 0) out.system = system.join('\n\n');
  for (const name of ['temperature', 'top_p', 'top_k'] as const) {
    const v = numberField(request, name);
    if (v !== undefined) out[name] = v;
  }
  const stop = stopSequences(request);
  if (stop !== undefined) out.stop_sequences = stop;
  if (typeof request.user === 'string') out.metadata = { user_id: request.user };

  const tools = readTools(request);
  if (tools.length > 0) {
    out.tools = tools.map((t) => {
      const tool: JsonObject = { name: t.name, input_schema: t.parameters };
      if (t.description !== undefined) tool.description = t.description;
      return tool;
    });
  }
  const choice = readToolChoice(request);
  let toolChoice: JsonObject | undefined;
  if (choice?.kind === 'auto') toolChoice = { type: 'auto' };
  else if (choice?.kind === 'required') toolChoice = { type: 'any' };
  else if (choice?.kind === 'none') toolChoice = { type: 'none' };
  else if (choice?.kind === 'function') toolChoice = { type: 'tool', name: choice.name };
  if (request.parallel_tool_calls === false && tools.length > 0) {
    toolChoice = { ...(toolChoice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  }
  if (toolChoice !== undefined) out.tool_choice = toolChoice;
  if (stream) out.stream = true;
  return out;
}

function block(part: Part): Block {
  if (part.kind === 'text') return { type: 'text', text: part.text };
  if (part.base64 !== undefined && part.mediaType !== undefined) {
    return { type: 'image', source: { type: 'base64', media_type: part.mediaType, data: part.base64 } };
  }
  return { type: 'image', source: { type: 'url', url: part.url } };
}
