/**
 * The OpenAI wire format's family: named OpenAI-compatible providers with their default URLs, and Azure OpenAI
 * (deployments, api-version, the api-key header), against loopback servers.
 */
import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { OPENAI_COMPATIBLE_URLS } from '../src/config/schema.js';
import { chat, postJson, sseData, startGateway } from './helpers/gateway.js';
import { startFakeProvider } from './helpers/fake-providers.js';

process.env.HEIMDALL_TEST_AZURE_KEY = 'azure-secret';
process.env.HEIMDALL_TEST_GROQ_KEY = 'gsk-secret';
t.teardown(() => {
  delete process.env.HEIMDALL_TEST_AZURE_KEY;
  delete process.env.HEIMDALL_TEST_GROQ_KEY;
});

t.test('named OpenAI-compatible providers: the name is the type, with its default URL', async (t) => {
  const expected = {
    openai: 'https://api.openai.com/v1',
    groq: 'https://api.groq.com/openai/v1',
    mistral: 'https://api.mistral.ai/v1',
    together: 'https://api.together.xyz/v1',
    deepseek: 'https://api.deepseek.com/v1',
    openrouter: 'https://openrouter.ai/api/v1',
    ollama: 'http://127.0.0.1:11434/v1',
    vllm: 'http://127.0.0.1:8000/v1',
  };
  t.same(OPENAI_COMPATIBLE_URLS, expected);
  const config = parseConfig({ providers: Object.fromEntries(Object.keys(expected).map((name) => [name, {}])) });
  for (const [name, url] of Object.entries(expected)) {
    t.match(config.providers[name], { type: name, base_url: url }, name);
  }
  const renamed = parseConfig({ providers: { fast: { type: 'groq', api_key: 'env.GROQ_API_KEY' } } });
  t.match(renamed.providers.fast, { type: 'groq', base_url: expected.groq });
  t.throws(() => parseConfig({ providers: { groq: { api_key: 'env.A', keys: [{ key: 'env.B' }] } } }), { message: /providers\.groq\.keys: give either "api_key" or "keys"/ });
  t.throws(() => parseConfig({ providers: { groq: { keys: [{ key: 'gsk-literal' }] } } }), { message: /providers\.groq\.keys\[0\]\.key: must be an environment reference/ });
});

t.test('a named provider speaks the OpenAI format to its base_url, with a bearer key', async (t) => {
  const up = await startFakeProvider(t, 'openai');
  const gw = await startGateway(t, { providers: { groq: { base_url: up.baseUrl, api_key: 'env.HEIMDALL_TEST_GROQ_KEY' } } });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('groq/llama-3.1-8b-instant', 'hello groq'));
  t.equal(res.status, 200);
  t.equal(res.json.choices[0].message.content, 'upstream says: hello groq');
  t.equal(up.seen[0]?.url, '/v1/chat/completions');
  t.equal(up.seen[0]?.headers.authorization, 'Bearer gsk-secret');
  t.equal(up.seen[0]?.model, 'llama-3.1-8b-instant');
});

t.test('azure: deployments, api-version and the api-key header, for chat, streams and embeddings', async (t) => {
  const up = await startFakeProvider(t, 'azure');
  const gw = await startGateway(t, {
    providers: {
      azure: {
        base_url: up.baseUrl,
        api_key: 'env.HEIMDALL_TEST_AZURE_KEY',
        api_version: '2024-10-21',
        deployments: { 'gpt-4o': 'prod-gpt4o' },
        headers: { 'X-Team': 'search' },
      },
    },
  });
  const res = await postJson(`${gw.url}/v1/chat/completions`, chat('azure/gpt-4o', 'hello azure'));
  t.equal(res.status, 200);
  t.equal(res.json.choices[0].message.content, 'upstream says: hello azure');
  const seen = up.seen[0];
  t.equal(seen?.url, '/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21');
  t.equal(seen?.headers['api-key'], 'azure-secret');
  t.notOk(seen?.headers.authorization, 'no bearer token');
  t.equal(seen?.headers['x-team'], 'search', 'configured headers are sent');

  const unmapped = await postJson(`${gw.url}/v1/chat/completions`, chat('azure/my-deployment', 'x'));
  t.equal(unmapped.status, 200);
  t.equal(up.seen[1]?.url, '/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21', 'an unmapped model is the deployment');

  const streamed = await postJson(`${gw.url}/v1/chat/completions`, chat('azure/gpt-4o', 'stream azure', { stream: true }));
  const data = sseData(streamed.text);
  t.equal(data.at(-1), '[DONE]');
  t.equal(data.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join(''), 'upstream says: stream azure');

  const emb = await postJson(`${gw.url}/v1/embeddings`, { model: 'azure/text-embedding-3-small', input: ['a', 'b'] });
  t.equal(emb.status, 200);
  t.equal(emb.json.data.length, 2);
  t.equal(up.seen.at(-1)?.url, '/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21');
});

t.test('azure needs its resource URL', async (t) => {
  t.throws(() => parseConfig({ providers: { azure: { api_key: 'env.X' } } }), { message: /providers\.azure\.base_url/ });
});
