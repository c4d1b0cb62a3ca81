// The registry transport alone, against small local servers: Bearer challenges and the token
// cache, Retry-After, redirects that drop the registry's Authorization off its origin or refuse
// plain http, and status codes turned into sentences.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import { RegistryTransport, isInsecure } from "../../../../../src/domain/sources/oci/transport.js";
import { EMPTY_REGISTRIES_CONF } from "../../../../../src/domain/sources/oci/registries-conf.js";
import { parseReference } from "../../../../../src/domain/oci/reference.js";
import { createContext } from "../../../../../src/util/context.js";
import { ExtctlError } from "../../../../../src/util/errors.js";

const silent = { verbosity: "quiet" as const, warn() {}, info() {}, debug() {} };

async function serve(t: TestContext, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function transport(
  t: TestContext,
  registry: string,
  options: Parameters<typeof RegistryTransport.create>[2] = {},
): Promise<RegistryTransport> {
  const tr = await RegistryTransport.create(
    createContext({ log: silent, env: {} }),
    parseReference(`${registry}/team/app:1`),
    {
      insecureRegistries: [registry],
      retryBaseMs: 1,
      registries: EMPTY_REGISTRIES_CONF,
      ...options,
    },
  );
  t.after(() => tr.close());
  return tr;
}

test("a Bearer challenge fetches a token for the repository's scope once, then reuses it", async (t) => {
  const tokenRequests: string[] = [];
  const realm = await serve(t, (req, res) => {
    tokenRequests.push(req.url ?? "");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token: "tok-1", expires_in: 300 }));
  });
  const seen: (string | undefined)[] = [];
  const registry = await serve(t, (req, res) => {
    seen.push(req.headers.authorization);
    if (req.headers.authorization !== "Bearer tok-1") {
      res.writeHead(401, {
        "www-authenticate": `Bearer realm="http://${realm}/token",service="reg"`,
      });
      res.end();
    } else res.writeHead(200).end("ok");
  });
  const tr = await transport(t, registry, { insecureRegistries: [registry, realm] });
  for (let i = 0; i < 2; i++) {
    const res = await tr.request("GET", "/v2/team/app/manifests/1");
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  }
  assert.deepEqual(seen, [undefined, "Bearer tok-1", "Bearer tok-1"]);
  assert.equal(tokenRequests.length, 1);
  const q = new URL(tokenRequests[0] as string, "http://x").searchParams;
  assert.equal(q.get("service"), "reg");
  assert.deepEqual(q.getAll("scope"), ["repository:team/app:pull"]);
});

test("429 with Retry-After waits as asked, then the answer comes through", async (t) => {
  let hits = 0;
  let firstAt = 0;
  let secondAt = 0;
  const registry = await serve(t, (_req, res) => {
    hits++;
    if (hits === 1) {
      firstAt = Date.now();
      res.writeHead(429, { "retry-after": "1" }).end();
    } else {
      secondAt = Date.now();
      res.writeHead(200).end();
    }
  });
  const tr = await transport(t, registry);
  const res = await tr.request("GET", "/v2/");
  await res.body.dump();
  assert.equal(res.statusCode, 200);
  assert.ok(secondAt - firstAt >= 900, `waited ${secondAt - firstAt} ms, not the 1 s asked`);
});

test("a redirect off the registry's origin goes without its Authorization", async (t) => {
  const storageSaw: (string | undefined)[] = [];
  const storage = await serve(t, (req, res) => {
    storageSaw.push(req.headers.authorization);
    res.writeHead(200).end("blob");
  });
  const registry = await serve(t, (req, res) => {
    if (!req.headers.authorization)
      res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
    else res.writeHead(307, { location: `http://${storage}/blob` }).end();
  });
  const tr = await transport(t, registry, {
    creds: "u:p",
    insecureRegistries: [registry, storage],
  });
  const res = await tr.request("GET", "/v2/team/app/blobs/sha256:00");
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), "blob");
  assert.deepEqual(storageSaw, [undefined]);
});

test("--insecure-registry entries match in the canonical form, with or without a port", () => {
  assert.equal(isInsecure("LOCALHOST:05001", ["localhost:5001"]), true);
  assert.equal(isInsecure("localhost:5001", ["http://localhost/"]), true);
  assert.equal(isInsecure("localhost:5002", ["localhost:5001"]), false);
});

test("statuses become sentences: 401 names the credentials, 404 is not-found, 503 is temporary", async (t) => {
  const status = { code: 404 };
  const registry = await serve(t, (_req, res) => {
    res.writeHead(status.code, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ code: "NAME_UNKNOWN", message: "no such repo" }] }));
  });
  const tr = await transport(t, registry, { maxRetries: 0 });
  const failure = async (code: number): Promise<ExtctlError> => {
    status.code = code;
    const res = await tr.request("GET", "/v2/team/app/manifests/1");
    try {
      await tr.fail(res, "fetch the manifest 1");
    } catch (e) {
      assert.ok(e instanceof ExtctlError);
      return e;
    }
    assert.fail("fail() returned");
  };
  const notFound = await failure(404);
  assert.equal(notFound.code, "not-found");
  assert.match(
    notFound.message,
    /team\/app: cannot fetch the manifest 1: not found \(NAME_UNKNOWN: no such repo\)/,
  );
  const busy = await failure(503);
  assert.equal(busy.exitCode, 75);
  assert.match(busy.message, /answered HTTP 503 when asked to fetch the manifest 1/);
  const refused = await failure(403);
  assert.match(refused.message, /refused access to team\/app .*HTTP 403.*without credentials/);
});

test("a registry that is not listening is a temporary failure naming the host", async (t) => {
  const tr = await transport(t, "127.0.0.1:1", {
    maxRetries: 0,
    insecureRegistries: ["127.0.0.1:1"],
  });
  await assert.rejects(tr.request("GET", "/v2/"), (e: unknown) => {
    assert.ok(e instanceof ExtctlError);
    assert.match(e.message, /cannot reach 127\.0\.0\.1:1: ECONNREFUSED/);
    assert.equal(e.exitCode, 75);
    return true;
  });
});
