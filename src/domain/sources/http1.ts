// Bulk downloads over HTTP/1.1 without undici's per-chunk buffers. undici stays the client for
// everything small (manifests, tokens, uploads); the requests that carry hundreds of MiB come
// here: one connection per request (net or tls), every read lands in one reused buffer (the
// socket's `onread`), and the body is handed on as views the consumer copies or hashes before
// it returns. On a 512 MiB blob from a local registry this reads at curl's speed, where undici's
// body stream took 2.7 times as long (measured with bench/oci.ts).
import net from "node:net";
import tls from "node:tls";
import { proxyAuthorization } from "../net/proxy.js";
import { stallError } from "./stall-guard.js";

/** The most a body view can hold: one socket read. */
export const MAX_VIEW = 1 << 20;
const MAX_HEAD = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
/** Low-speed limit while the body flows, as in stall-guard.ts. */
const MIN_BYTES = 1024;

export interface BulkRequest {
  url: URL;
  headers: Record<string, string>;
  /** Trusted CAs for https (default: Node's). */
  ca?: readonly string[] | undefined;
  /** Connect-and-head timeout, and the low-speed limit's window once the body flows. */
  timeoutMs: number;
  /** What is being fetched, for messages. */
  what: string;
  /** An http:// proxy to go through (domain/net/proxy.ts): CONNECT for https, absolute-form for http. */
  proxy?: URL;
}

export type ResponseHeaders = Record<string, string | string[]>;

export interface BulkResponse {
  statusCode: number;
  headers: ResponseHeaders;
  body: BulkBody;
}

/**
 * Takes a view of body bytes that is valid only during the call. Returning a promise pauses
 * the socket until it settles; a rejection ends the download with that error.
 */
export type BodyConsumer = (view: Buffer) => Promise<void> | undefined;

/**
 * Where the consumer would like the next read to land (at least MAX_VIEW bytes), so that the
 * view it then gets is already in place; undefined when it has no room.
 */
export type ReadSpace = () => Buffer | undefined;

/** An error with a code, like the socket's own, so callers can tell retryable ones apart. */
export function httpError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Sends a GET and resolves once the response head has arrived; the body waits for a consumer. */
export async function bulkGet(request: BulkRequest): Promise<BulkResponse> {
  return new Exchange(request).start();
}

export interface BulkBody extends AsyncIterable<Buffer> {
  /** Feeds the body to `consumer`; resolves with the byte count once all of it has passed. */
  pipe(consumer: BodyConsumer, space?: ReadSpace): Promise<number>;
  /** Drops the rest of the body (the connection is not reused). */
  dump(): Promise<void>;
  destroy(error?: Error): void;
}

export function isBulkBody(value: unknown): value is BulkBody {
  return value instanceof Exchange;
}

type Framing =
  | { kind: "length"; remaining: number }
  | { kind: "chunked"; decoder: ChunkedDecoder }
  | { kind: "eof" };

class Exchange implements BulkBody {
  private socket: net.Socket | undefined;
  private readonly readBuffer = Buffer.allocUnsafe(MAX_VIEW);
  private state: "head" | "waiting" | "body" | "done" | "failed" = "head";
  private head: Buffer = Buffer.alloc(0);
  /**
   * Body bytes that arrived while the consumer could not take them: with the head, before a
   * consumer came, or while it asked to wait. Returning false from onread stops the next read,
   * but TLS still hands over the records it has already decrypted.
   */
  private backlog: Buffer[] = [];
  private framing: Framing = { kind: "eof" };
  private consumer: BodyConsumer | undefined;
  private space: ReadSpace | undefined;
  private waitingOn: Promise<void> | undefined;
  private received = 0;
  /** The server closed its side. */
  private ended = false;
  private failure: Error | undefined;
  private settleHead:
    { resolve: (r: BulkResponse) => void; reject: (e: Error) => void } | undefined;
  private settleBody: { resolve: (n: number) => void; reject: (e: Error) => void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private markTime = Date.now();
  private markBytes = 0;

  constructor(private readonly request: BulkRequest) {}

  start(): Promise<BulkResponse> {
    const { url, headers } = this.request;
    const promise = new Promise<BulkResponse>((resolve, reject) => {
      this.settleHead = { resolve, reject };
    });
    const proxy = this.request.proxy;
    const secure = url.protocol === "https:";
    // Through a proxy, plain http asks for the absolute URL; https tunnels with CONNECT first.
    const target = proxy && !secure ? url.toString() : `${url.pathname}${url.search}`;
    let head = `GET ${target} HTTP/1.1\r\nhost: ${url.host}\r\n`;
    const proxyAuth = proxy && !secure ? proxyAuthorization(proxy) : undefined;
    const fields: Record<string, string> = {
      ...headers,
      "accept-encoding": "identity",
      connection: "close",
      ...(proxyAuth ? { "proxy-authorization": proxyAuth } : {}),
    };
    for (const [name, value] of Object.entries(fields)) {
      if (/[\r\n]/.test(name) || /[\r\n]/.test(value))
        throw new TypeError(`invalid header ${name}`);
      head += `${name}: ${value}\r\n`;
    }
    head += "\r\n";
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port) || (secure ? 443 : 80);
    // Node asks for the next read's buffer after each callback: the consumer's space when it
    // has some (no copy), else readBuffer. No 'data' events are emitted.
    const onread = {
      buffer: () => (this.accepting() ? this.space?.() : undefined) ?? this.readBuffer,
      callback: (n: number, buf: Uint8Array) =>
        this.onRead(Buffer.from(buf.buffer, buf.byteOffset, n)),
    };
    const tlsOptions = {
      ...(net.isIP(host) ? {} : { servername: host }),
      ...(this.request.ca ? { ca: [...this.request.ca] } : {}),
      rejectUnauthorized: true,
    };
    const tick = Math.max(50, Math.min(1000, this.request.timeoutMs / 4));
    this.timer = setInterval(() => this.checkStall(), tick);
    this.timer.unref();
    const attach = (socket: net.Socket): void => {
      this.socket = socket;
      socket.on("error", (e) => this.fail(e));
      socket.on("end", () => this.onEnd());
      socket.on("close", () => this.onEnd());
      socket.write(head);
    };
    if (!proxy)
      attach(
        secure
          ? tls.connect({ host, port, ...tlsOptions, onread } as tls.ConnectionOptions)
          : net.connect({ host, port, onread }),
      );
    else if (!secure)
      attach(net.connect({ host: proxyHost(proxy), port: proxyPort(proxy), onread }));
    else
      openTunnel(proxy, host, port, this.request.what).then(
        (raw) => {
          if (this.state === "failed") return void raw.destroy();
          // TLS over an existing socket ignores onread: its bytes come as 'data' events. `host`
          // is the target's: Node checks the certificate against it (an IP SAN for an address),
          // and without it against "localhost" (issue 24 item 4); SNI stays names only.
          const socket = tls.connect({
            socket: raw,
            host,
            ...tlsOptions,
          } as tls.ConnectionOptions);
          socket.on("data", (chunk: Buffer) => {
            if (!this.onRead(chunk)) socket.pause();
          });
          attach(socket);
        },
        (e: unknown) => this.fail(e as Error),
      );
    return promise;
  }

  // --- the body, as the caller sees it ---

  pipe(consumer: BodyConsumer, space?: ReadSpace): Promise<number> {
    if (this.consumer) return Promise.reject(new Error("the body is already being read"));
    this.consumer = consumer;
    this.space = space;
    const done = new Promise<number>((resolve, reject) => {
      this.settleBody = { resolve, reject };
    });
    if (this.state === "failed") this.settleBody?.reject(this.failure as Error);
    else if (this.state === "waiting") {
      this.state = "body";
      this.markTime = Date.now();
      this.drain();
    } else if (this.state === "done") this.finish();
    return done;
  }

  async dump(): Promise<void> {
    if (this.state === "done" || this.state === "failed") return;
    this.close();
    this.state = "done";
  }

  destroy(error?: Error): void {
    this.fail(error ?? httpError("ABORT_ERR", `the download of ${this.request.what} was aborted`));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const queue: Buffer[] = [];
    let wake: (() => void) | undefined;
    let release: (() => void) | undefined;
    let finished = false;
    let failure: { error: unknown } | undefined;
    const piped = this.pipe((view) => {
      queue.push(Buffer.from(view));
      wake?.();
      return new Promise<void>((r) => (release = r));
    }).then(
      () => {
        finished = true;
        wake?.();
      },
      (e: unknown) => {
        failure = { error: e };
        finished = true;
        wake?.();
      },
    );
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          const r = release;
          release = undefined;
          r?.();
          yield next;
          continue;
        }
        if (finished) {
          if (failure) throw failure.error;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      if (!finished) this.destroy();
      await piped;
    }
  }

  // --- the socket ---

  /** Returns false to stop reading (no consumer yet, or it asked to wait). */
  private onRead(data: Buffer): boolean {
    if (this.state === "head") return this.readHead(data);
    if (this.state === "waiting" || (this.state === "body" && !this.accepting())) {
      this.backlog.push(Buffer.from(data));
      return false;
    }
    if (this.state !== "body") return false;
    this.deliver(data);
    return this.accepting();
  }

  private accepting(): boolean {
    return this.state === "body" && this.waitingOn === undefined && this.backlog.length === 0;
  }

  /** Hands the backlog on while the consumer takes it; then reads on, or ends. */
  private drain(): void {
    while (this.state === "body" && this.waitingOn === undefined && this.backlog.length > 0)
      this.deliver(this.backlog.shift() as Buffer);
    if (!this.accepting()) return;
    if (this.ended) this.onEnd();
    else this.socket?.resume();
  }

  private readHead(data: Buffer): boolean {
    this.head = this.head.length === 0 ? Buffer.from(data) : Buffer.concat([this.head, data]);
    if (this.request.url.protocol === "http:" && isTlsRecord(this.head)) {
      this.fail(
        httpError(
          "ETLSREPLY",
          `${this.request.what} answered a plain HTTP request with TLS: it is an https server`,
        ),
      );
      return false;
    }
    for (;;) {
      const end = this.head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.head.length > MAX_HEAD) {
          this.fail(
            httpError(
              "HPE_HEADER_OVERFLOW",
              `${this.request.what} sent a response head over ${MAX_HEAD} bytes`,
            ),
          );
        }
        return this.state === "head";
      }
      const rest = this.head.subarray(end + 4);
      let parsed: { statusCode: number; headers: ResponseHeaders };
      try {
        parsed = parseHead(this.head.subarray(0, end).toString("latin1"), this.request.what);
      } catch (e) {
        this.fail(e as Error);
        return false;
      }
      // An interim answer (100 Continue, 103 Early Hints) comes before the real one.
      if (parsed.statusCode < 200 && parsed.statusCode !== 101) {
        this.head = Buffer.from(rest);
        continue;
      }
      this.head = Buffer.alloc(0);
      try {
        this.framing = framingOf(parsed.statusCode, parsed.headers, this.request.what);
      } catch (e) {
        this.fail(e as Error);
        return false;
      }
      if (rest.length > 0) this.backlog.push(Buffer.from(rest));
      this.state = "waiting";
      if (this.framing.kind === "length" && this.framing.remaining === 0) this.state = "done";
      this.settleHead?.resolve({ ...parsed, body: this });
      this.settleHead = undefined;
      return false;
    }
  }

  /** Passes the body bytes in `data` on, in place (chunk framing is squeezed out). */
  private deliver(data: Buffer): void {
    let view: Buffer;
    let complete = false;
    const framing = this.framing;
    if (framing.kind === "length") {
      view = data.subarray(0, Math.min(data.length, framing.remaining));
      framing.remaining -= view.length;
      complete = framing.remaining === 0;
    } else if (framing.kind === "chunked") {
      try {
        view = framing.decoder.decode(data);
      } catch (e) {
        this.fail(malformed(this.request.what, (e as Error).message));
        return;
      }
      complete = framing.decoder.done;
    } else view = data;
    if (complete) this.state = "done";
    if (view.length > 0) {
      this.received += view.length;
      this.markBytes += view.length;
      if (this.markBytes >= MIN_BYTES) {
        this.markTime = Date.now();
        this.markBytes = 0;
      }
      let waiting: Promise<void> | undefined;
      try {
        waiting = (this.consumer as BodyConsumer)(view);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      if (waiting) {
        this.waitingOn = waiting;
        waiting.then(
          () => {
            if (this.waitingOn !== waiting) return;
            this.waitingOn = undefined;
            this.markTime = Date.now();
            this.markBytes = 0;
            if (this.state === "body") this.drain();
            else if (this.state === "done") this.finish();
          },
          (e: unknown) => this.fail(e as Error),
        );
      }
    }
    if (this.state === "done" && this.waitingOn === undefined) this.finish();
  }

  private onEnd(): void {
    this.ended = true;
    if (this.state === "head") {
      this.fail(
        httpError("ECONNRESET", `${this.request.what} closed the connection before answering`),
      );
    }
    // Looked at again once the consumer has taken what arrived before the end (drain).
    if (!this.accepting()) return;
    if (this.framing.kind === "eof") {
      this.state = "done";
      if (this.waitingOn === undefined) this.finish();
      return;
    }
    const expected =
      this.framing.kind === "length"
        ? ` of ${this.received + this.framing.remaining} announced`
        : "";
    this.fail(
      httpError(
        "ECONNRESET",
        `${this.request.what} closed the connection after ${this.received}${expected} bytes`,
      ),
    );
  }

  private checkStall(): void {
    const now = Date.now();
    if (now - this.markTime <= this.request.timeoutMs) return;
    if (this.state === "head") {
      this.fail(httpError("ETIMEDOUT", `${this.request.what} did not answer in time`));
    } else if (this.state === "body" && this.waitingOn === undefined) {
      this.fail(stallError(this.request.what, MIN_BYTES, this.request.timeoutMs));
    }
  }

  private finish(): void {
    this.close();
    this.settleBody?.resolve(this.received);
    this.settleBody = undefined;
  }

  private fail(error: Error): void {
    if (this.state === "failed" || (this.state === "done" && !this.settleBody)) return;
    this.state = "failed";
    this.failure = error;
    this.close();
    this.settleHead?.reject(error);
    this.settleHead = undefined;
    this.settleBody?.reject(error);
    this.settleBody = undefined;
  }

  private close(): void {
    clearInterval(this.timer);
    this.socket?.destroy();
  }
}

function proxyHost(proxy: URL): string {
  return proxy.hostname.replace(/^\[(.*)\]$/, "$1");
}

function proxyPort(proxy: URL): number {
  return Number(proxy.port) || 80;
}

/** A TCP connection to host:port through the proxy's CONNECT tunnel, ready for TLS. */
function openTunnel(proxy: URL, host: string, port: number, what: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const socket = net.connect({ host: proxyHost(proxy), port: proxyPort(proxy) });
    let head = Buffer.alloc(0);
    const auth = proxyAuthorization(proxy);
    const fail = (e: Error) => {
      socket.destroy();
      reject(e);
    };
    socket.once("error", (e: NodeJS.ErrnoException) =>
      fail(
        httpError(
          "EPROXY",
          `cannot reach the proxy ${proxy.host} for ${what}: ${e.code ?? e.message}`,
        ),
      ),
    );
    socket.on("connect", () =>
      socket.write(
        `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n${auth ? `proxy-authorization: ${auth}\r\n` : ""}\r\n`,
      ),
    );
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > MAX_HEAD)
          fail(httpError("EPROXY", `the proxy ${proxy.host} sent an oversized answer`));
        return;
      }
      socket.off("data", onData);
      socket.removeAllListeners("error");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString("latin1", 0, end));
      if (status?.[1] !== "200") {
        const line = head.toString("latin1", 0, end).split("\r\n")[0] ?? "";
        return fail(
          httpError(
            "EPROXY",
            `the proxy ${proxy.host} refused the tunnel to ${authority} for ${what}: ${line}`,
          ),
        );
      }
      socket.pause();
      resolve(socket);
    };
    socket.on("data", onData);
  });
}

/**
 * Whether a reply starts like a TLS record: a handshake (0x16) or an alert (0x15) of TLS 1.x
 * (0x03 0x01-0x04), what some servers send back to plain HTTP on their TLS port.
 */
export function isTlsRecord(reply: Uint8Array): boolean {
  return (
    reply.length >= 3 &&
    (reply[0] === 0x16 || reply[0] === 0x15) &&
    reply[1] === 0x03 &&
    (reply[2] as number) <= 0x04
  );
}

function malformed(what: string, detail: string): Error {
  return httpError("HPE_INVALID_RESPONSE", `${what} sent a malformed HTTP response: ${detail}`);
}

function parseHead(text: string, what: string): { statusCode: number; headers: ResponseHeaders } {
  const lines = text.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
  if (!status) throw malformed(what, `the status line ${JSON.stringify(lines[0]?.slice(0, 80))}`);
  const headers: ResponseHeaders = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon)))
      throw malformed(what, `the header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prior = headers[name];
    headers[name] = prior === undefined ? value : [...[prior].flat(), value];
  }
  return { statusCode: Number(status[1]), headers };
}

function framingOf(statusCode: number, headers: ResponseHeaders, what: string): Framing {
  if (statusCode === 204 || statusCode === 304) return { kind: "length", remaining: 0 };
  const te = [headers["transfer-encoding"] ?? []].flat().join(",").toLowerCase();
  if (te.trim() !== "") {
    // RFC 9112 6.3: chunked must come last; any other coding is one extctl cannot undo.
    const codings = te.split(",").map((c) => c.trim());
    if (codings.length !== 1 || codings[0] !== "chunked")
      throw malformed(what, `the transfer coding "${te}"`);
    return { kind: "chunked", decoder: new ChunkedDecoder() };
  }
  const length = headers["content-length"];
  if (length !== undefined) {
    const values = new Set([length].flat().flatMap((v) => v.split(",").map((s) => s.trim())));
    const only = [...values][0] ?? "";
    if (values.size !== 1 || !/^\d{1,15}$/.test(only))
      throw malformed(what, `the Content-Length ${JSON.stringify([length].flat().join(", "))}`);
    return { kind: "length", remaining: Number(only) };
  }
  return { kind: "eof" };
}

/**
 * Undoes chunked transfer coding in place: the data of each read is moved down over the chunk
 * lines, so one read still gives one view.
 */
export class ChunkedDecoder {
  private phase: "size" | "data" | "data-crlf" | "trailer" | "done" = "size";
  private line = "";
  private remaining = 0;

  get done(): boolean {
    return this.phase === "done";
  }

  decode(data: Buffer): Buffer {
    let out = 0;
    let i = 0;
    while (i < data.length && this.phase !== "done") {
      if (this.phase === "data") {
        const n = Math.min(this.remaining, data.length - i);
        if (out !== i) data.copyWithin(out, i, i + n);
        out += n;
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.phase = "data-crlf";
        continue;
      }
      const lf = data.indexOf(0x0a, i);
      const end = lf < 0 ? data.length : lf;
      this.line += data.toString("latin1", i, end);
      if (this.line.length > MAX_CHUNK_LINE) throw new Error("a chunk line is too long");
      i = end;
      if (lf < 0) break;
      i += 1;
      const line = this.line.replace(/\r$/, "");
      this.line = "";
      if (this.phase === "data-crlf") {
        if (line !== "") throw new Error("a chunk is longer than its size says");
        this.phase = "size";
      } else if (this.phase === "size") {
        const size = /^([0-9a-fA-F]{1,13})[ \t]*(?:;.*)?$/.exec(line);
        if (!size) throw new Error(`the chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = parseInt(size[1] as string, 16);
        this.phase = this.remaining === 0 ? "trailer" : "data";
      } else if (line === "") this.phase = "done";
    }
    return data.subarray(0, out);
  }
}
