// The benchmark's upstream: an OpenAI-compatible chat-completions server on loopback that answers every request
// with the same chat.completion (usage included) after a configurable delay. Run by bench/run.mjs as a child
// process; it reports its URL over IPC.
//
//   node bench/targets/upstream.mjs [latencyMs]
import http from 'node:http';

const latencyMs = Number(process.argv[2] ?? 0);

// One prebuilt answer: the upstream should cost as little as possible, and the same for every target.
const ANSWER = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1700000000,
    model: 'bench',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'A short answer from the benchmark upstream, about the length of a real one.' },
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 180, completion_tokens: 16, total_tokens: 196 },
  }),
);
const HEADERS = { 'content-type': 'application/json', 'content-length': String(ANSWER.length) };

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
    res.writeHead(404).end();
    return;
  }
  req.resume(); // the body is read and dropped: the answer does not depend on it
  req.on('end', () => {
    const answer = () => res.writeHead(200, HEADERS).end(ANSWER);
    if (latencyMs > 0) setTimeout(answer, latencyMs);
    else answer();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ url: `http://127.0.0.1:${server.address().port}` }));
process.on('message', (m) => {
  if (m === 'cpu') return process.send?.({ cpu: process.cpuUsage() });
  if (m !== 'stop') return;
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
process.on('disconnect', () => process.exit(0));
