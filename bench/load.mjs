// The three loads the benchmark applies to every target, from the benchmark's own process (never the target's).
//
// saturate(): autocannon with many connections, each sending its next request as soon as the last is answered:
// the most requests per second the target can serve.
//
// paced(): requests at a fixed rate, sent on schedule whatever the answers do (an open loop), each timed from
// send to last byte with sub-microsecond resolution. autocannon's own rate limit is not used for this: it sends
// each second's quota as fast as it can and then waits, so its latencies are those of bursts at saturation, and it
// records them in whole milliseconds, too coarse for a gateway that adds tens of microseconds.
//
// oneAtATime(): one connection, each request sent when the last one is answered: the latency a lone client sees,
// with no queueing behind other requests (the figure gateway comparisons usually quote as "added latency").
import autocannon from 'autocannon';
import { Pool } from 'undici';

/** Requests per second at saturation. */
export async function saturate(url, body, { connections, seconds }) {
  const result = await autocannon({
    url: `${url}/v1/chat/completions`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    pipelining: 1,
    duration: seconds,
  });
  const failed = result.errors + result.timeouts + result.non2xx;
  if (failed > 0) throw new Error(`${url}: ${failed} of ${result.requests.total} requests failed at saturation`);
  return { rps: result.requests.average, requests: result.requests.total };
}

/** Latency percentiles (milliseconds) at `rate` requests per second. */
export async function paced(url, body, { rate, seconds }) {
  const pool = new Pool(url, { connections: 64, pipelining: 1 });
  const total = Math.round(rate * seconds);
  const latencies = new Float64Array(total);
  let sent = 0;
  let sentAll = 0;
  let done = 0;
  let failed = 0;
  const start = performance.now();
  await new Promise((resolve) => {
    const one = async (i) => {
      const t0 = performance.now();
      try {
        const res = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body });
        await res.body.text();
        if (res.statusCode !== 200) failed++;
      } catch {
        failed++;
      }
      latencies[i] = performance.now() - t0;
      if (++done === total) resolve();
    };
    // Timers fire about once a millisecond: each tick sends every request that is due by now (two or three at
    // 2,000/s), so the load stays even within each second.
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000));
      while (sent < due) one(sent++);
      if (sent < total) setTimeout(tick, 1);
      else sentAll = performance.now();
    };
    tick();
  });
  await pool.close();
  if (failed > 0) throw new Error(`${url}: ${failed} of ${total} requests failed at ${rate}/s`);
  latencies.sort();
  const at = (q) => latencies[Math.min(total - 1, Math.floor(q * total))];
  return { rate: (total * 1000) / (sentAll - start), requests: total, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: latencies[total - 1] };
}

/** Latency (milliseconds) of `requests` requests sent one at a time, after `warmup` more that are not counted. */
export async function oneAtATime(url, body, { requests, warmup }) {
  const pool = new Pool(url, { connections: 1, pipelining: 1 });
  const latencies = new Float64Array(requests);
  try {
    for (let i = -warmup; i < requests; i++) {
      const t0 = performance.now();
      const res = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body });
      await res.body.text();
      const t1 = performance.now();
      if (res.statusCode !== 200) throw new Error(`${url}: status ${res.statusCode} one request at a time`);
      if (i >= 0) latencies[i] = t1 - t0;
    }
  } finally {
    await pool.close();
  }
  const mean = latencies.reduce((a, b) => a + b, 0) / requests;
  latencies.sort();
  const at = (q) => latencies[Math.min(requests - 1, Math.floor(q * requests))];
  return { requests, mean, p50: at(0.5), p99: at(0.99), max: latencies[requests - 1] };
}
