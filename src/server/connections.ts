/**
 * The main port's connections: how long a client may take to send a request, how long an idle keep-alive
 * connection stays open, how many connections are open at once, and closing them all at shutdown within a deadline.
 *
 * Node enforces the first three. A request cut off mid-way gets the gateway's 408 error body here (Node would send
 * a bare 408), and shutdown counts the requests still open when the deadline passes.
 */
import type { FastifyHttpOptions } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { Errors, errorBody, type HeimdallError } from '../errors.js';

export type ServerLimits = Pick<
  Config['server'],
  'headers_timeout_ms' | 'request_timeout_ms' | 'keep_alive_timeout_ms' | 'max_connections' | 'shutdown_timeout_ms'
>;

/** At most one line per this long about refused connections, however many are refused. */
const DROP_LOG_INTERVAL_MS = 60_000;

export class Connections {
  private server: Server | undefined;
  /** Responses not yet finished: requests in flight, streams included. */
  private readonly open = new Set<ServerResponse>();
  /** The latest request on each connection, to tell a slow body from slow headers when a timeout fires. */
  private readonly latest = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();
  private draining = false;
  private closing: Promise<void> | undefined;

  /** True once shutdown has begun: the gateway finishes what it holds and takes nothing new. */
  get isDraining(): boolean {
    return this.draining;
  }

  private deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  private refused = 0;
  private refusedLoggedAt = -Infinity;

  constructor(
    private readonly limits: ServerLimits,
    private readonly log: Logger,
    /** Told of each answer written here, outside fastify (a 408, a 400 for broken HTTP), for the request metrics. */
    private readonly onAnswer: (status: number) => void = () => {},
  ) {}

  /** Fastify's options for the HTTP server: the timeouts, and the 408 answer. */
  fastifyOptions(): Pick<
    FastifyHttpOptions<Server>,
    'http' | 'requestTimeout' | 'keepAliveTimeout' | 'connectionTimeout' | 'forceCloseConnections' | 'clientErrorHandler'
  > {
    const { request_timeout_ms: requestTimeout, keep_alive_timeout_ms: keepAliveTimeout } = this.limits;
    // Node refuses headersTimeout > requestTimeout; the request's deadline covers its headers anyway.
    const headersTimeout = Math.min(this.limits.headers_timeout_ms, requestTimeout);
    return {
      // Fastify sets requestTimeout and keepAliveTimeout on the server itself (it would set 0 and 72 s); Node reads
      // headersTimeout and connectionsCheckingInterval only when the server is created.
      requestTimeout,
      keepAliveTimeout,
      http: { headersTimeout, requestTimeout, keepAliveTimeout, connectionsCheckingInterval: checkingInterval(headersTimeout, requestTimeout) },
      // No inactivity timeout on a socket: a stream may be quiet for as long as its provider allows.
      connectionTimeout: 0,
      // server.close() ends idle keep-alive connections at once; close() below ends the rest.
      forceCloseConnections: 'idle',
      clientErrorHandler: (err, socket) => this.onClientError(err, socket),
    };
  }

  /** Start watching the server fastify created: its connection cap, and the requests it serves. */
  attach(server: Server): void {
    this.server = server;
    server.maxConnections = this.limits.max_connections;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.open.add(res);
      this.latest.set(req.socket, { req, res });
      res.once('close', () => {
        this.open.delete(res);
        // During the drain, a connection whose last answer has gone out is closed now, not at its keep-alive timeout.
        if (this.draining) setImmediate(() => server.closeIdleConnections());
      });
    });
    // Node closes a connection over max_connections as soon as it is accepted; say so, without a line per client.
    server.on('drop', () => {
      this.refused++;
      const now = Date.now();
      if (now - this.refusedLoggedAt < DROP_LOG_INTERVAL_MS) return;
      this.log.warn({ max_connections: this.limits.max_connections, refused: this.refused }, 'refusing new connections: server.max_connections are open');
      this.refusedLoggedAt = now;
      this.refused = 0;
    });
  }

  /**
   * Close gracefully: `closeServer` stops accepting and resolves once every connection is closed (fastify's close);
   * requests in flight get `timeoutMs` to finish, then every connection left is closed. Called again during the
   * drain, it returns the same promise, and a shorter timeout (0: at once) brings the deadline forward.
   */
  close(closeServer: () => Promise<void>, timeoutMs = this.limits.shutdown_timeout_ms): Promise<void> {
    if (this.closing === undefined) {
      this.draining = true;
      this.closing = closeServer().finally(() => clearTimeout(this.timer));
    }
    const at = Date.now() + timeoutMs;
    if (at < this.deadline) {
      this.deadline = at;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.closeAll(), timeoutMs);
    }
    return this.closing;
  }

  private closeAll(): void {
    if (this.open.size > 0) {
      this.log.warn({ open_requests: this.open.size, shutdown_timeout_ms: this.limits.shutdown_timeout_ms },
        `shutdown deadline passed with ${this.open.size} request${this.open.size === 1 ? '' : 's'} still open; closing their connections`);
    }
    this.server?.closeAllConnections();
  }

  /**
   * Node's 'clientError': a request past its deadline, or one that is not valid HTTP. The client gets an error body
   * when nothing of an answer has gone out yet; the connection is closed either way.
   */
  private onClientError(err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const exchange = this.latest.get(socket);
    // The latest request on a keep-alive connection may be one already answered: then this one has no headers yet.
    const receiving = exchange !== undefined && !exchange.req.complete ? exchange : undefined;
    if (socket.writable && receiving?.res.headersSent !== true) {
      let e: HeimdallError;
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        e = this.timeoutError(receiving !== undefined);
        this.log.info({ remote: socket.remoteAddress, url: receiving?.req.url, status: e.statusCode }, e.message);
      } else {
        e = Errors.BAD_REQUEST(err.code === 'HPE_HEADER_OVERFLOW'
          ? 'the request\'s headers are larger than the server accepts'
          : `the request is not valid HTTP (${err.code ?? err.message})`);
      }
      socket.write(rawAnswer(e));
      this.onAnswer(e.statusCode);
    }
    socket.destroy(err);
  }

  /**
   * Node reports both deadlines alike (one periodic check, one error code); which one passed follows from whether
   * the headers had all arrived.
   */
  private timeoutError(headersReceived: boolean): HeimdallError {
    const { headers_timeout_ms: headers, request_timeout_ms: request } = this.limits;
    return !headersReceived && headers < request ? Errors.REQUEST_TIMEOUT('headers', headers) : Errors.REQUEST_TIMEOUT('request', request);
  }
}

/**
 * How often Node looks for requests past their deadline (30 s by default): a quarter of the shorter timeout, so one
 * fires at most a quarter late, and at most every second. The check walks only connections mid-request.
 */
function checkingInterval(headersMs: number, requestMs: number): number {
  return Math.max(10, Math.min(1000, Math.floor(Math.min(headersMs, requestMs) / 4)));
}

/** A whole HTTP/1.1 answer written straight to the socket, as no response object exists for it. */
function rawAnswer(e: HeimdallError): string {
  const body = JSON.stringify(errorBody(e));
  return `HTTP/1.1 ${e.statusCode} ${STATUS_CODES[e.statusCode] ?? ''}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
