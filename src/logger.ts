/**
 * The gateway's logger (pino, shared with fastify): JSON lines for machines, readable lines for a person at a
 * terminal. Credentials are redacted wherever they may appear in a log line (the access line, which has nowhere
 * for them, is built without them: see accessLogger). Request and response bodies are not logged unless the config
 * asks for them (`log.bodies`, written by the pipeline): lines carry ids, names, statuses and timings, not what users
 * said.
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
  if (destination !== undefined && !pretty) return pino(options, destination as pino.DestinationStream);
  if (!pretty) return bufferedStdout(options);
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

/** Lines kept before one write to stdout: a write per access line was most of the logging's cost. */
const BUFFER_BYTES = 4096;
/** The longest a line waits in the buffer when traffic is light. */
const FLUSH_MS = 200;
/** warn and above. */
const WARN = 40;

/**
 * JSON lines to stdout through a buffer: one write a few kilobytes at a time, not one per line, which under load
 * costs a system call per request. A warning or an error is written at once (synchronously: the line that explains
 * a crash must not die in the buffer with the process); the rest within FLUSH_MS, and all of it when the process
 * exits normally (pino flushes its destination then).
 */
function bufferedStdout(options: pino.LoggerOptions): Logger {
  const dest = pino.destination({ dest: 1, sync: false, minLength: BUFFER_BYTES });
  setInterval(() => {
    try {
      dest.flush();
    } catch {
      // not ready yet, or already closed: the next interval (or the exit) writes it
    }
  }, FLUSH_MS).unref();
  return pino(
    {
      ...options,
      hooks: {
        logMethod(args, method, level) {
          method.apply(this, args);
          if (level >= WARN) {
            try {
              dest.flushSync();
            } catch {
              // a write already in progress: it carries the buffer
            }
          }
        },
      },
    },
    dest,
  );
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A request's logger: fastify gives every request a child logger carrying its request id, but most requests never
 * log anything (the access line is written from `accessLogger`, with the id in it). This stand-in makes the real
 * child on the first line that is actually written, so a request that logs nothing allocates no logger.
 */
class RequestLogger {
  private real: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: pino.Bindings,
  ) {}

  get level(): string {
    return (this.real ?? this.parent).level;
  }

  set level(level: string) {
    this.logger().level = level;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.logger().child(bindings, options);
  }

  private write(level: Level, args: unknown[]): void {
    if (!(this.real ?? this.parent).isLevelEnabled(level)) return;
    (this.logger()[level] as (...a: unknown[]) => void)(...args);
  }

  private logger(): Logger {
    return (this.real ??= this.parent.child(this.bindings));
  }
}

/**
 * fastify's childLoggerFactory: a lazy RequestLogger, unless the route asks for its own level or serializers (then
 * the real child at once; Heimdall's routes never do).
 */
export function requestLoggerFactory(logger: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions): Logger {
  if (options.level !== undefined || options.serializers !== undefined) return logger.child(bindings, options);
  return new RequestLogger(logger, bindings) as unknown as Logger;
}

/**
 * The logger of the per-request access line. The line holds only the request id, method, path (stripped of query,
 * path parameters and user info by loggedPath), status and time, never a header or a body, so it skips
 * the redaction every other line goes through (a third of its cost).
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}

/**
 * What a log line says of a request's target: its path only. Not the query string (some clients put API keys
 * there), path parameters (`;key=...`), or the user:password of a target sent in absolute form
 * (`POST http://user:secret@host/v1/...`), which node:http hands over as it came.
 */
export function loggedPath(url: string): string {
  if (url.startsWith('/')) {
    const end = url.search(/[?;#]/);
    return end === -1 ? url : url.slice(0, end);
  }
  try {
    return loggedPath(new URL(url).pathname);
  } catch {
    return '(not a URL)';
  }
}
