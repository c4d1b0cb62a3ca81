import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { RegistryClient } from "../../../../../src/domain/sources/oci/client.js";
import { parseReference } from "../../../../../src/domain/oci/reference.js";
import { createContext } from "../../../../../src/util/context.js";
import { tempDir } from "../../../../helpers/tmp.js";

const silent = { verbosity: "quiet" as const, warn() {}, info() {}, debug() {} };

async function serve(t: TestContext, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  server.closeAllConnections?.();
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("a blob survives a 503, a redirect to storage without the registry's Authorization, and a dropped connection", async (t) => {
  const blob = Buffer.alloc(300_000);
  for (let i = 0; i < blob.length; i++) blob[i] = (i * 7) & 0xff;
  const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
  const storageSaw: { authorization: string | undefined; range: string | undefined }[] = [];
  const storage = await serve(t, (req, res) => {
    storageSaw.push({ authorization: req.headers.authorization, range: req.headers.range });
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (!range) {
      // Send part of the blob, then drop the connection.
      res.writeHead(200, { "content-length": String(blob.length) });
      res.write(blob.subarray(0, 100_000), () => res.socket?.destroy());
      return;
    }
    const start = Number(range[1]);
    res.writeHead(206, {
      "content-length": String(blob.length - start),
      "content-range": `bytes ${start}-${blob.length - 1}/${blob.length}`,
    });
    res.end(blob.subarray(start));
  });
  let registryHits = 0;
  const registry = await serve(t, (req, res) => {
    registryHits++;
    if (req.headers.authorization !== "Basic dTpw") {
      res.writeHead(401, { "www-authenticate": 'Basic realm="test"' }).end();
    } else if (registryHits === 2) {
      res.writeHead(503).end();
    } else {
      res.writeHead(307, { location: `http://${storage}/data/${digest}` }).end();
    }
  });
  const ctx = createContext({ log: silent, env: {} });
  const client = await RegistryClient.create(ctx, parseReference(`${registry}/r/x:1`), {
    creds: "u:p",
    insecureRegistries: [registry, storage],
    retryBaseMs: 1,
  });
  t.after(() => client.close());
  const dir = await tempDir(t);
  const file = path.join(dir, "blob");
  const handle = await open(file, "w");
  let ticked = 0;
  try {
    await client.downloadBlob(
      { mediaType: "x", digest, size: blob.length },
      handle,
      (n) => (ticked += n),
    );
  } finally {
    await handle.close();
  }
  assert.deepEqual(await readFile(file), blob);
  assert.equal(ticked, blob.length);
  assert.ok(storageSaw.length >= 2, "the download resumed");
  assert.ok(
    storageSaw.every((s) => s.authorization === undefined),
    "storage never saw the registry's Authorization",
  );
  assert.ok(
    storageSaw.slice(1).every((s) => s.range !== undefined),
    "resumes ask for a Range",
  );
});

test("a blob larger than its descriptor is cut off, not buffered", async (t) => {
  const blob = Buffer.alloc(50_000, 1);
  const registry = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-length": String(blob.length) });
    res.end(blob);
  });
  const ctx = createContext({ log: silent, env: {} });
  const client = await RegistryClient.create(ctx, parseReference(`${registry}/r/x:1`), {
    insecureRegistries: [registry],
  });
  t.after(() => client.close());
  const handle = await open(path.join(await tempDir(t), "b"), "w");
  t.after(() => handle.close());
  await assert.rejects(
    client.downloadBlob(
      { mediaType: "x", digest: `sha256:${"0".repeat(64)}`, size: 1000 },
      handle,
      () => {},
    ),
    (e: Error & { code?: string }) =>
      e.code === "checksum" && /larger than the 1000 bytes/.test(e.message),
  );
});

test("retries stop after a bound and the registry's error is reported", async (t) => {
  let hits = 0;
  const registry = await serve(t, (_req, res) => {
    hits++;
    res.writeHead(500, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "disk on fire" }] }));
  });
  const client = await RegistryClient.create(
    createContext({ log: silent, env: {} }),
    parseReference(`${registry}/r/x:1`),
    {
      insecureRegistries: [registry],
      retryBaseMs: 1,
    },
  );
  t.after(() => client.close());
  await assert.rejects(client.getManifest("1"), /HTTP 500 .*UNKNOWN: disk on fire/);
  assert.equal(hits, 5);
});

test("an oversized manifest is refused", async (t) => {
  const registry = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" });
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const push = () => {
      while (sent < 8 && res.write(chunk)) sent++;
      if (sent < 8)
        res.once("drain", () => {
          sent++;
          push();
        });
      else res.end();
    };
    push();
  });
  const client = await RegistryClient.create(
    createContext({ log: silent, env: {} }),
    parseReference(`${registry}/r/x:1`),
    {
      insecureRegistries: [registry],
    },
  );
  t.after(() => client.close());
  await assert.rejects(client.getManifest("1"), /larger than 4194304 bytes/);
});
