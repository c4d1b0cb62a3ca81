// A local HTTPS server for tests and benchmarks: 127.0.0.1 only, a free port, a throwaway CA made
// by openssl, and hostile modes (slow drip, truncation, lying Content-Length, redirect loops...).
//
// Usage:
//   const server = await startHttpsServer({ dir });           // or withHttpsServer(t, {...})
//   server.addFile("tool.sysext.raw", bytesOrHostPath);
//   runExtctl(["sysext", "install", server.url("tool.sysext.raw"), "--ca-cert", server.caCert]);
//   server.url("tool.sysext.raw", "truncated")                // a hostile answer for the same file
//   await server.stop();                                      // closes every connection
//
// URLs are https://127.0.0.1:PORT/MODE/NAME; the modes are listed in ServeMode. Hostile answers
// are written straight onto the TLS socket, so they can break HTTP in ways Node's own response
// object refuses to (a body longer than its Content-Length, for one).
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import path from "node:path";
import { Readable } from "node:stream";
import type { TestContext } from "node:test";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** How the server answers a request for /MODE/NAME. */
export type ServeMode =
  /**
   * 200 with the right Content-Length, an ETag and Last-Modified, and the whole file; 304 and no
   * body to a request whose If-None-Match (or, without one, If-Modified-Since) still matches.
   */
  | "ok"
  /** 200 with no Content-Length (chunked transfer encoding) and the whole file. */
  | "chunked"
  /**
   * The first request gets the right Content-Length and an ETag, then half the file and a cut
   * connection; a request with Range (and a matching If-Range) gets 206 and the rest.
   */
  | "cut-once"
  /** The first request of each file gets 503 with Retry-After: 1, the next ones the file. */
  | "busy-once"
  /** The first request of each file gets 429 with a Retry-After HTTP-date 1 to 2 s ahead. */
  | "limited-once"
  /** 200 with the right Content-Length, then `dripBytes` bytes every `dripIntervalMs`. */
  | "slow-drip"
  /**
   * 200 with the right Content-Length and an ETag, half the file at once, then the rest
   * dripped like slow-drip; a request with Range (and a matching If-Range) gets 206 and the rest.
   */
  | "slow-half"
  /** 200 with the right Content-Length, then half the file, then the connection is closed. */
  | "truncated"
  /** 200 announcing 1,000 bytes fewer than it then sends. */
  | "short-length"
  /** 200 announcing 1,000 bytes more than it sends, then the connection is closed. */
  | "long-length"
  /** 302 to itself with a counter, forever. */
  | "redirect-loop"
  /** 302 to /ok/NAME (a well-behaved redirect). */
  | "redirect"
  /** 200 whose headers are `hugeHeaderBytes` long before any body. */
  | "huge-headers"
  /** Accepts the request and never answers. */
  | "silent"
  /** 500 with a short text body. */
  | "error";

export const SERVE_MODES: readonly ServeMode[] = [
  "ok",
  "chunked",
  "cut-once",
  "busy-once",
  "limited-once",
  "slow-drip",
  "slow-half",
  "truncated",
  "short-length",
  "long-length",
  "redirect-loop",
  "redirect",
  "huge-headers",
  "silent",
  "error",
];

/** PEM files of a throwaway CA and two leaf certificates it signed. */
export interface TestCertificates {
  dir: string;
  caCert: string;
  caKey: string;
  /** For 127.0.0.1 and localhost. */
  serverCert: string;
  serverKey: string;
  /** Signed by the same CA, but only for wrong-host.invalid: a hostname mismatch. */
  wrongHostCert: string;
  wrongHostKey: string;
  /** Only the address 127.0.0.1 (an IP SAN, no name): what a client must match by address. */
  ipOnlyCert: string;
  ipOnlyKey: string;
  /** Only the name localhost: a client addressing 127.0.0.1 must refuse it. */
  nameOnlyCert: string;
  nameOnlyKey: string;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  await execFileAsync("openssl", args, { cwd });
}

async function leafCertificate(
  dir: string,
  name: string,
  subjectAltName: string,
): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  await writeFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${subjectAltName}`,
      "",
    ].join("\n"),
  );
  await openssl(
    ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"].concat([
      "-keyout",
      key,
      "-out",
      csr,
      "-subj",
      `/CN=${name}`,
    ]),
    dir,
  );
  await openssl(
    ["x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "2"].concat([
      "-set_serial",
      String(Date.now()),
      "-extfile",
      ext,
      "-out",
      cert,
    ]),
    dir,
  );
  return { cert, key };
}

/** Makes a CA and its leaf certificates under `dir` with openssl (EC P-256: fast to make). */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  await openssl(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"].concat([
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=extctl throwaway test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]),
    dir,
  );
  const server = await leafCertificate(dir, "server", "IP:127.0.0.1,DNS:localhost");
  const wrong = await leafCertificate(dir, "wrong-host", "DNS:wrong-host.invalid");
  const ipOnly = await leafCertificate(dir, "ip-only", "IP:127.0.0.1");
  const nameOnly = await leafCertificate(dir, "name-only", "DNS:localhost");
  return {
    dir,
    caCert: path.join(dir, "ca.crt"),
    caKey: path.join(dir, "ca.key"),
    serverCert: server.cert,
    serverKey: server.key,
    wrongHostCert: wrong.cert,
    wrongHostKey: wrong.key,
    ipOnlyCert: ipOnly.cert,
    ipOnlyKey: ipOnly.key,
    nameOnlyCert: nameOnly.cert,
    nameOnlyKey: nameOnly.key,
  };
}

export interface HttpsServerOptions {
  /** Where certificates are made when `certificates` is not given. */
  dir: string;
  /** Reuse certificates made earlier (one CA for several servers). */
  certificates?: TestCertificates;
  /**
   * "wrong-host" serves a certificate for another host name, signed by the same CA; "ip-only"
   * one for 127.0.0.1 alone, "name-only" one for localhost alone.
   */
  certificate?: "ok" | "wrong-host" | "ip-only" | "name-only";
  /** slow-drip: bytes per tick and the pause between ticks (default 1 byte / 100 ms). */
  dripBytes?: number;
  dripIntervalMs?: number;
  /** huge-headers: total header bytes (default 1 MiB). */
  hugeHeaderBytes?: number;
}

export interface TestHttpsServer {
  port: number;
  /** https://127.0.0.1:PORT */
  origin: string;
  /** The CA certificate (PEM path) clients must trust: pass as --ca-cert or NODE_EXTRA_CA_CERTS. */
  caCert: string;
  certificates: TestCertificates;
  /** URL of a served file in a mode (default "ok"). */
  url(name: string, mode?: ServeMode): string;
  /** Serves `content` (bytes, or a host path streamed from disk) as NAME. */
  addFile(name: string, content: Buffer | string): void;
  /** Requests received so far, by mode. */
  readonly hits: Record<string, number>;
  /** The Range header of every request that had one, in order. */
  readonly ranges: string[];
  /** Every request in order: its conditional headers and User-Agent, the status and body bytes. */
  readonly requests: LoggedRequest[];
  /** Connections open right now. */
  openConnections(): number;
  /** Cuts every connection and closes the server. */
  stop(): Promise<void>;
}

/** One request as the server saw and answered it (a catalog fleet's cost is counted from these). */
export interface LoggedRequest {
  path: string;
  userAgent?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  status: number;
  /** Body bytes sent (0 for a 304). */
  bodyBytes: number;
}

type FileContent = { kind: "bytes"; data: Buffer } | { kind: "path"; path: string };

async function contentSize(content: FileContent): Promise<number> {
  return content.kind === "bytes" ? content.data.length : (await stat(content.path)).size;
}

function contentStream(content: FileContent, start = 0, end?: number): NodeJS.ReadableStream {
  if (content.kind === "path") {
    return createReadStream(content.path, {
      start,
      ...(end === undefined ? {} : { end: end - 1 }),
      highWaterMark: 1 << 20,
    });
  }
  return Readable.from([content.data.subarray(start, end)]);
}

export async function startHttpsServer(options: HttpsServerOptions): Promise<TestHttpsServer> {
  const certificates = options.certificates ?? (await makeTestCertificates(options.dir));
  const pair = {
    ok: [certificates.serverCert, certificates.serverKey],
    "wrong-host": [certificates.wrongHostCert, certificates.wrongHostKey],
    "ip-only": [certificates.ipOnlyCert, certificates.ipOnlyKey],
    "name-only": [certificates.nameOnlyCert, certificates.nameOnlyKey],
  }[options.certificate ?? "ok"];
  const cert = await readFile(pair[0] as string);
  const key = await readFile(pair[1] as string);
  const dripBytes = options.dripBytes ?? 1;
  const dripIntervalMs = options.dripIntervalMs ?? 100;
  const hugeHeaderBytes = options.hugeHeaderBytes ?? 1 << 20;

  const files = new Map<string, FileContent>();
  /** Per file: its validators, set when it is added (a new addFile is a new version). */
  const validators = new Map<string, { etag: string; lastModified: string }>();
  let versions = 0;
  const startedAt = Date.now();
  const requests: LoggedRequest[] = [];
  const hits: Record<string, number> = {};
  const ranges: string[] = [];
  const refused = new Set<string>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer({ cert, key }, (req, res) => {
    void answer(req, res).catch(() => req.socket.destroy());
  });
  server.on("secureConnection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  server.on("tlsClientError", () => {});

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    const [, modeText = "", ...rest] = url.pathname.split("/");
    const name = decodeURIComponent(rest.join("/"));
    const mode = modeText as ServeMode;
    hits[mode] = (hits[mode] ?? 0) + 1;
    const ifNoneMatch = req.headers["if-none-match"];
    const ifModifiedSince = req.headers["if-modified-since"];
    // Logged as asked; the status and body bytes are filled in by the answers that count them.
    const entry: LoggedRequest = {
      path: url.pathname,
      status: 0,
      bodyBytes: 0,
      ...(req.headers["user-agent"] ? { userAgent: req.headers["user-agent"] } : {}),
      ...(ifNoneMatch ? { ifNoneMatch } : {}),
      ...(ifModifiedSince ? { ifModifiedSince } : {}),
    };
    requests.push(entry);
    if (req.headers.range) ranges.push(String(req.headers.range));
    const socket = req.socket;
    if (mode === "redirect-loop") {
      const n = Number(url.searchParams.get("n") ?? "0") + 1;
      res.writeHead(302, { location: `/redirect-loop/${rest.join("/")}?n=${n}` }).end();
      return;
    }
    if (mode === "redirect") {
      res.writeHead(302, { location: `/ok/${rest.join("/")}` }).end();
      return;
    }
    if (mode === "error") {
      res.writeHead(500, { "content-type": "text/plain" }).end("internal error (on purpose)\n");
      return;
    }
    if (mode === "silent") return; // the socket stays open until the client or stop() ends it
    const content = files.get(name);
    if (!content || !(SERVE_MODES as readonly string[]).includes(mode)) {
      entry.status = 404;
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const size = await contentSize(content);
    switch (mode) {
      case "ok": {
        const { etag, lastModified } = validators.get(name) as {
          etag: string;
          lastModified: string;
        };
        entry.status = 200;
        entry.bodyBytes = size;
        // RFC 9110 13.2.2: If-None-Match decides when present; If-Modified-Since only without it.
        const unchanged =
          ifNoneMatch !== undefined
            ? ifNoneMatch.split(",").some((tag) => tag.trim() === etag)
            : ifModifiedSince !== undefined &&
              Date.parse(ifModifiedSince) >= Date.parse(lastModified);
        if (unchanged) {
          entry.status = 304;
          entry.bodyBytes = 0;
          res.writeHead(304, { etag, "last-modified": lastModified }).end();
          return;
        }
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": String(size),
          etag,
          "last-modified": lastModified,
        });
        contentStream(content).pipe(res);
        return;
      }
      case "busy-once":
      case "limited-once": {
        const key = `${mode}/${name}`;
        if (!refused.has(key)) {
          refused.add(key);
          // An HTTP-date has whole seconds: 2 s ahead is at least 1 s once truncated.
          const when = new Date(Date.now() + 2000).toUTCString();
          res
            .writeHead(mode === "busy-once" ? 503 : 429, {
              "retry-after": mode === "busy-once" ? "1" : when,
              "content-type": "text/plain",
            })
            .end("come back later\n");
          return;
        }
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": String(size),
        });
        contentStream(content).pipe(res);
        return;
      }
      case "slow-half":
      case "cut-once": {
        const etag = `"extctl-test-${size}"`;
        const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ""));
        if (range && req.headers["if-range"] === etag) {
          const from = Number(range[1]);
          res.writeHead(206, {
            "content-type": "application/octet-stream",
            "content-length": String(size - from),
            "content-range": `bytes ${from}-${size - 1}/${size}`,
            etag,
          });
          contentStream(content, from).pipe(res);
          return;
        }
        socket.write(rawHead(size).replace("\r\n\r\n", `\r\nETag: ${etag}\r\n\r\n`));
        await pipeRaw(socket, content, 0, Math.floor(size / 2));
        if (mode === "cut-once") {
          socket.end();
          return;
        }
        drip(socket, content, Math.floor(size / 2));
        return;
      }
      case "chunked":
        res.writeHead(200, { "content-type": "application/octet-stream" });
        contentStream(content).pipe(res);
        return;
      case "huge-headers": {
        // Many 8 KiB headers: past any sane client's limit, well within TCP's patience.
        const line = "x".repeat(8 * 1024);
        const count = Math.ceil(hugeHeaderBytes / line.length);
        let head = `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\nConnection: close\r\n`;
        for (let i = 0; i < count; i++) head += `X-Padding-${i}: ${line}\r\n`;
        socket.write(head + "\r\n");
        await pipeRaw(socket, content, 0, size);
        socket.end();
        return;
      }
      case "truncated":
        socket.write(rawHead(size));
        await pipeRaw(socket, content, 0, Math.floor(size / 2));
        // end(), not destroy(): the half that was written must reach the client first.
        socket.end();
        return;
      case "short-length":
        socket.write(rawHead(Math.max(0, size - 1000)));
        await pipeRaw(socket, content, 0, size);
        socket.end();
        return;
      case "long-length":
        socket.write(rawHead(size + 1000));
        await pipeRaw(socket, content, 0, size);
        socket.end();
        return;
      case "slow-drip":
        socket.write(rawHead(size));
        drip(socket, content, 0);
        return;
    }
  }

  /** Sends `content` from `from` on, `dripBytes` every `dripIntervalMs`, then ends. */
  function drip(socket: Socket, content: FileContent, from: number): void {
    void (async () => {
      const data =
        content.kind === "bytes" ? content.data : await readFile(content.path).catch(() => null);
      if (!data) return void socket.destroy();
      let offset = from;
      const timer = setInterval(() => {
        if (socket.destroyed || offset >= data.length) {
          clearInterval(timer);
          timers.delete(timer);
          if (!socket.destroyed) socket.end();
          return;
        }
        socket.write(data.subarray(offset, offset + dripBytes));
        offset += dripBytes;
      }, dripIntervalMs);
      timers.add(timer);
    })();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  const port = address.port;
  const origin = `https://127.0.0.1:${port}`;
  let stopped = false;

  return {
    port,
    origin,
    caCert: certificates.caCert,
    certificates,
    hits,
    ranges,
    requests,
    url: (name, mode = "ok") => `${origin}/${mode}/${encodeURIComponent(name)}`,
    addFile(name, content) {
      // A new version of a file gets a new ETag; Last-Modified moves by a whole second so that
      // If-Modified-Since (second resolution) sees the change too.
      versions++;
      validators.set(name, {
        etag: `"v${versions}-${name.length}"`,
        lastModified: new Date(startedAt - 86_400_000 + versions * 1000).toUTCString(),
      });
      files.set(
        name,
        typeof content === "string"
          ? { kind: "path", path: content }
          : { kind: "bytes", data: content },
      );
    },
    openConnections: () => sockets.size,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Starts a server that the test stops when it ends. */
export async function withHttpsServer(
  t: TestContext,
  options: HttpsServerOptions,
): Promise<TestHttpsServer> {
  const server = await startHttpsServer(options);
  t.after(() => server.stop());
  return server;
}

function rawHead(contentLength: number): string {
  return (
    "HTTP/1.1 200 OK\r\n" +
    "Content-Type: application/octet-stream\r\n" +
    `Content-Length: ${contentLength}\r\n` +
    "Connection: close\r\n\r\n"
  );
}

async function pipeRaw(
  socket: Socket,
  content: FileContent,
  start: number,
  end: number,
): Promise<void> {
  for await (const chunk of contentStream(content, start, end) as AsyncIterable<Buffer>) {
    if (socket.destroyed) return;
    if (!socket.write(chunk)) {
      await new Promise<void>((resolve) => {
        socket.once("drain", resolve);
        socket.once("close", resolve);
      });
    }
  }
}
