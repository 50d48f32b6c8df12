// The benchmark's chat request: a system prompt and one user message, padded to an exact size in bytes.
const WORDS = 'the quick brown fox jumps over the lazy dog while the gateway forwards every request it is given ';

export function chatRequest(bytes, model = 'openai/bench') {
  const request = {
    model,
    messages: [
      { role: 'system', content: 'You are a helpful assistant. Answer briefly.' },
      { role: 'user', content: '' },
    ],
    temperature: 0.2,
    max_tokens: 256,
  };
  const room = bytes - Buffer.byteLength(JSON.stringify(request));
  if (room < 0) throw new Error(`a chat request needs more than ${bytes} bytes`);
  request.messages[1].content = WORDS.repeat(Math.ceil(room / WORDS.length)).slice(0, room);
  const out = Buffer.from(JSON.stringify(request));
  if (out.length !== bytes) throw new Error(`built ${out.length} bytes, not ${bytes}`);
  return out;
}
