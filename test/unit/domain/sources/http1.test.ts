import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import https from "node:https";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { bulkGet, ChunkedDecoder, type BulkRequest } from "../../../../src/domain/sources/http1.js";
import { makeTestCertificates } from "../../../helpers/https-server.js";
import { tempDir } from "../../../helpers/tmp.js";

/** A TCP server whose every connection gets `answer` (the raw bytes of an HTTP response). */
async function rawServer(
  t: TestContext,
  answer: (socket: net.Socket, request: string) => void,
): Promise<URL> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let head = "";
    socket.on("data", (d: Buffer) => {
      if (head.includes("\r\n\r\n")) return;
      head += d.toString("latin1");
      if (head.includes("\r\n\r\n")) answer(socket, head);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/blob?x=1`);
}

function request(url: URL, extra: Partial<BulkRequest> = {}): BulkRequest {
  return {
    url,
    headers: { "user-agent": "t" },
    timeoutMs: 5000,
    what: "the test server",
    ...extra,
  };
}

/** Writes `data` in pieces of random sizes (1 byte to 9 KiB) with pauses, to split it anywhere. */
async function dribble(socket: net.Socket, data: Buffer, seed = 1): Promise<void> {
  let x = seed;
  for (let at = 0; at < data.length;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (x % 9000);
    socket.write(data.subarray(at, at + n));
    at += n;
    if (x % 7 === 0) await new Promise((r) => setImmediate(r));
  }
}

async function collect(response: Awaited<ReturnType<typeof bulkGet>>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const n = await response.body.pipe((view) => {
    parts.push(Buffer.from(view));
    return undefined;
  });
  const all = Buffer.concat(parts);
  assert.equal(n, all.length);
  return all;
}

test("a Content-Length body arrives whole, and the request carries its path, host and headers", async (t) => {
  const body = randomBytes(3 << 20);
  let seen = "";
  const url = await rawServer(t, (socket, req) => {
    seen = req;
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-A: 1\r\nX-A: 2\r\n\r\n`);
    void dribble(socket, body);
  });
  const response = await bulkGet(request(url, { headers: { authorization: "Bearer t" } }));
  assert.equal(response.statusCode, 200);
  assert.deepEqual(response.headers["x-a"], ["1", "2"]);
  assert.ok((await collect(response)).equals(body));
  assert.match(seen, /^GET \/blob\?x=1 HTTP\/1\.1\r\n/);
  assert.match(seen, new RegExp(`\r\nhost: ${url.host}\r\n`));
  assert.match(seen, /\r\nauthorization: Bearer t\r\n/);
  assert.match(seen, /\r\naccept-encoding: identity\r\n/);
});

test("a chunked body is decoded wherever the reads split it, trailers and extensions included", async (t) => {
  const body = randomBytes(700_000);
  let encoded = "";
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < body.length; i++) {
    const n = Math.min(body.length - at, [1, 17, 4096, 65536, 200_001][i % 5] as number);
    pieces.push(Buffer.from(`${n.toString(16)}${i % 3 === 0 ? ";ext=1" : ""}\r\n`));
    pieces.push(body.subarray(at, at + n), Buffer.from("\r\n"));
    at += n;
  }
  pieces.push(Buffer.from("0\r\nX-Trailer: yes\r\n\r\n"));
  encoded = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const wire = Buffer.concat([Buffer.from(encoded), ...pieces]);
  for (const seed of [1, 2, 3]) {
    const url = await rawServer(t, (socket) => void dribble(socket, wire, seed));
    assert.ok((await collect(await bulkGet(request(url)))).equals(body), `seed ${seed}`);
  }
});

test("ChunkedDecoder refuses bad size lines and chunks longer than announced", () => {
  assert.throws(() => new ChunkedDecoder().decode(Buffer.from("zz\r\n")), /chunk size line/);
  assert.throws(
    () => new ChunkedDecoder().decode(Buffer.from("2\r\nabc\r\n")),
    /longer than its size/,
  );
  const d = new ChunkedDecoder();
  assert.equal(d.decode(Buffer.from("3\r\nabc\r\n0\r\n\r\n")).toString(), "abc");
  assert.ok(d.done);
});

test("a body until the connection closes, and a 100 Continue before the answer", async (t) => {
  const body = randomBytes(100_000);
  const url = await rawServer(t, (socket) => {
    socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    socket.end(body);
  });
  const response = await bulkGet(request(url));
  assert.equal(response.statusCode, 200);
  assert.ok((await collect(response)).equals(body));
});

test("a connection cut before the announced length fails with ECONNRESET and the count", async (t) => {
  const url = await rawServer(t, (socket) => {
    socket.end("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + "x".repeat(400));
  });
  const response = await bulkGet(request(url));
  await assert.rejects(collect(response), (e: Error & { code?: string }) => {
    assert.equal(e.code, "ECONNRESET");
    assert.match(e.message, /after 400 of 1000 announced bytes/);
    return true;
  });
});

test("malformed answers are refused with what was wrong", async (t) => {
  const cases: [string, RegExp][] = [
    ["SPDY/3 200 OK\r\n\r\n", /status line/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", /Content-Length/],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /Content-Length/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", /transfer coding/],
    ["HTTP/1.1 200 OK\r\nbad header\r\n\r\n", /header line/],
  ];
  for (const [wire, why] of cases) {
    const url = await rawServer(t, (socket) => socket.write(wire));
    await assert.rejects(bulkGet(request(url)), (e: Error & { code?: string }) => {
      assert.equal(e.code, "HPE_INVALID_RESPONSE", wire.slice(0, 40));
      assert.match(e.message, why);
      assert.match(e.message, /the test server sent a malformed HTTP response/);
      return true;
    });
  }
  const huge = await rawServer(t, (socket) =>
    socket.write("HTTP/1.1 200 OK\r\n" + "X: y\r\n".repeat(20_000)),
  );
  await assert.rejects(bulkGet(request(huge)), (e: Error & { code?: string }) => {
    assert.equal(e.code, "HPE_HEADER_OVERFLOW");
    assert.match(e.message, /the test server sent a response head over 65536 bytes/);
    return true;
  });
  const url = await rawServer(t, (socket) =>
    socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdefgh\r\n"),
  );
  await assert.rejects(collect(await bulkGet(request(url))), /longer than its size/);
});

test("a server that never answers times out, and one that stops sending trips the low-speed limit", async (t) => {
  const silent = await rawServer(t, () => {});
  await assert.rejects(
    bulkGet(request(silent, { timeoutMs: 300 })),
    (e: Error & { code?: string }) => e.code === "ETIMEDOUT" && /did not answer/.test(e.message),
  );
  const stalls = await rawServer(t, (socket) =>
    socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + "x".repeat(5000)),
  );
  const started = Date.now();
  const response = await bulkGet(request(stalls, { timeoutMs: 300 }));
  await assert.rejects(collect(response), /too slow: less than 1024 bytes in 0\.3 s/);
  assert.ok(Date.now() - started < 3000);
});

test("a consumer that returns a promise gets nothing more until it settles, and its rejection ends the download", async (t) => {
  const body = randomBytes(4 << 20);
  const url = await rawServer(t, (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.end(body);
  });
  const response = await bulkGet(request(url));
  const parts: Buffer[] = [];
  let busy = false;
  let calls = 0;
  await response.body.pipe((view) => {
    assert.equal(busy, false, "called while the last promise was pending");
    parts.push(Buffer.from(view));
    if (++calls % 2 === 1) return undefined;
    busy = true;
    return new Promise<void>((r) =>
      setTimeout(() => {
        busy = false;
        r();
      }, 2),
    );
  });
  assert.ok(Buffer.concat(parts).equals(body));

  const again = await bulkGet(request(url));
  await assert.rejects(
    again.body.pipe(() => Promise.reject(new Error("disk full"))),
    /disk full/,
  );
});

test("a small body reads through the async iterator, and dump() drops the rest", async (t) => {
  const url = await rawServer(t, (socket) =>
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n\r\n{"errors":[]}\n'),
  );
  const response = await bulkGet(request(url));
  assert.equal(response.statusCode, 404);
  const parts: Buffer[] = [];
  for await (const part of response.body) parts.push(part);
  assert.equal(Buffer.concat(parts).toString(), '{"errors":[]}\n');

  let closed: Promise<void> | undefined;
  const big = await rawServer(t, (socket) => {
    closed = new Promise((r) => socket.on("close", () => r()));
    socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n");
    socket.write(Buffer.alloc(100_000));
  });
  const dropped = await bulkGet(request(big));
  await dropped.body.dump();
  // The connection is closed rather than the 100 MB read.
  await closed;
});

test("https: the server is verified against the given CAs, and an unknown CA is refused", async (t) => {
  const dir = await tempDir(t);
  const certs = await makeTestCertificates(path.join(dir, "certs"));
  const body = randomBytes(1 << 20);
  const server = https.createServer(
    { key: await readFile(certs.serverKey), cert: await readFile(certs.serverCert) },
    (_req, res) => {
      res.writeHead(200, { "content-length": String(body.length) });
      res.end(body);
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const url = new URL(`https://127.0.0.1:${(server.address() as net.AddressInfo).port}/x`);
  const ca = [await readFile(certs.caCert, "utf8")];
  assert.ok((await collect(await bulkGet(request(url, { ca })))).equals(body));
  // TLS hands over records it has decrypted even after onread said stop: a consumer that comes
  // late, or waits, must still get every byte.
  const late = await bulkGet(request(url, { ca }));
  await new Promise((r) => setTimeout(r, 200));
  const parts: Buffer[] = [];
  await late.body.pipe((view) => {
    parts.push(Buffer.from(view));
    return new Promise((r) => setTimeout(r, 1));
  });
  assert.ok(Buffer.concat(parts).equals(body));
  await assert.rejects(
    bulkGet(request(url)),
    (e: Error & { code?: string }) => e.code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  );
});

test("plain HTTP answered with a TLS record fails at once as ETLSREPLY; the message says https", async (t) => {
  const { describeNetworkError } = await import("../../../../src/domain/sources/http.js");
  const { isTlsRecord } = await import("../../../../src/domain/sources/http1.js");
  assert.equal(isTlsRecord(Buffer.from([0x16, 0x03, 0x01, 0x00])), true, "handshake");
  assert.equal(isTlsRecord(Buffer.from([0x15, 0x03, 0x03, 0x00])), true, "alert");
  assert.equal(isTlsRecord(Buffer.from("HTTP/1.1 200 OK\r\n")), false);
  assert.equal(isTlsRecord(Buffer.from([0x16, 0x03])), false, "too short to tell");
  // An alert (what some TLS servers send back to plain HTTP), then nothing: no CRLF ever comes.
  const url = await rawServer(t, (socket) =>
    socket.write(Buffer.from([0x15, 0x03, 0x03, 0, 2, 2, 50])),
  );
  const e = await bulkGet(request(url)).then(
    () => assert.fail("a TLS reply is no HTTP response"),
    (err: unknown) => err as Error & { code?: string },
  );
  assert.equal(e.code, "ETLSREPLY");
  const described = describeNetworkError(e, url.href);
  assert.match(described.message, /answered in TLS, not plain HTTP/);
  assert.equal(
    described.hint,
    `that port speaks https: use https://${url.host}${url.pathname}${url.search}`,
  );
  assert.equal(described.exitCode, 1, "not an outage: 75 would make a timer retry it forever");
});

test("plain HTTP that gets no answer at all suggests https, not only trying again", async (t) => {
  const { describeNetworkError } = await import("../../../../src/domain/sources/http.js");
  const url = await rawServer(t, (socket) => socket.end());
  const e = await bulkGet(request(url)).then(
    () => assert.fail("no answer is no response"),
    (err: unknown) => err as Error,
  );
  const described = describeNetworkError(e, url.href);
  assert.match(described.message, /closed the connection without answering/);
  assert.match(described.hint ?? "", /if that port serves TLS, use https:\/\/127\.0\.0\.1:/);
  // Cut in the middle of a body is still a cut transfer.
  const cut = describeNetworkError(
    Object.assign(new Error("x closed the connection after 10 bytes"), { code: "ECONNRESET" }),
    url.href,
  );
  assert.equal(cut.hint, "try again");
});
