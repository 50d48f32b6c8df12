// The floor: the least a Node.js gateway can do. fastify receives the body as bytes, undici sends them to the
// upstream, and its answer goes back as it came (read whole first: for answers this small, that measured faster
// than piping the stream). No parsing, no plugins, no logs, no metrics. Heimdall is measured against this, not
// against an imaginary zero.
//
//   node bench/targets/floor.mjs <upstreamUrl>
import Fastify from 'fastify';
import { Pool } from 'undici';

const upstream = process.argv[2];
const pool = new Pool(upstream, { connections: 128 });
const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

app.post('/v1/chat/completions', async (req, reply) => {
  const res = await pool.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    body: req.body,
  });
  const answer = Buffer.from(await res.body.arrayBuffer());
  reply.code(res.statusCode).header('content-type', res.headers['content-type'] ?? 'application/json');
  return reply.send(answer);
});

const url = await app.listen({ host: '127.0.0.1', port: 0 });
process.send?.({ url });
process.on('message', async (m) => {
  if (m === 'cpu') return process.send?.({ cpu: process.cpuUsage() }); // the benchmark's CPU time per request
  if (m !== 'stop') return;
  await app.close();
  await pool.close();
  process.exit(0);
});
process.on('disconnect', () => process.exit(0));
