/**
 * The gateway's logger (pino, shared with fastify): JSON lines for machines, readable lines for a person at a
 * terminal. Credentials are redacted wherever they appear in a log line. Request and response bodies are never
 * logged: lines carry ids, names, statuses and timings, not what users said.
 */
import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'api_key',
  '*.api_key',
];

/**
 * `pretty` defaults to whether the logs go to a terminal: a person reads those, while anything piped or redirected
 * (a log shipper, a file, a test) gets one JSON object per line.
 */
export function createLogger(
  level: string,
  destination?: NodeJS.WritableStream,
  pretty = destination === undefined && process.stdout.isTTY === true,
): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (!pretty) return pino(options, destination as pino.DestinationStream | undefined);
  return pino(
    options,
    pinoPretty({
      destination: destination ?? 1,
      // Written as they come, so nothing is lost when the process exits and lines keep their order with stderr.
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}
