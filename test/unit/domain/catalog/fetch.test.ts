// Loading catalogs: file: URLs under the root, the default catalog list, detached signatures
// under both policies, the freshness memory that refuses a replayed catalog, and skipping.
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import {
  CATALOG_STATE_FILE,
  DEFAULT_CATALOGS_FILE,
  defaultCatalogUrls,
  loadCatalogs,
} from "../../../../src/domain/catalog/fetch.js";
import { readMachineId } from "../../../../src/domain/catalog/machine-id.js";
import { resolveExtension } from "../../../../src/domain/catalog/resolve.js";
import { signCatalog, verifyCatalog } from "../../../../src/operations/catalog.js";
import { createContext, type Context } from "../../../../src/util/context.js";
import { ExtctlError } from "../../../../src/util/errors.js";
import { MemoryLogger } from "../../../../src/util/log.js";
import { Root } from "../../../../src/util/root.js";
import { makeSigningCert } from "../../../helpers/keys.js";
import { tempDir, tempRoot } from "../../../helpers/tmp.js";
import { bytesOf, catalogJson } from "./fixtures.js";

interface Setup {
  root: string;
  ctx: Context;
  log: MemoryLogger;
  keys: string;
}

async function setup(t: TestContext): Promise<Setup> {
  const root = await tempRoot(t);
  const keys = await tempDir(t);
  const log = new MemoryLogger();
  return { root, keys, log, ctx: createContext({ root, log }) };
}

/**
 * Writes a catalog at node path `nodePath` under the root; returns its file: URL as a caller
 * gives it (a host path).
 */
async function writeCatalog(
  s: Setup,
  nodePath: string,
  options: { generated?: string; version?: string } = {},
): Promise<string> {
  const version = options.version ?? "1.0.0";
  const json = catalogJson(
    [{ name: "tool", latest: version, tags: [version] }],
    options.generated ?? "2026-09-01T08:24:03Z",
  );
  const file = path.join(s.root, nodePath);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytesOf(json));
  return `file://${file}`;
}

function hostPath(url: string): string {
  return new URL(url).pathname;
}

test("file: catalogs given by the caller are host paths, and resolve", async (t) => {
  const s = await setup(t);
  const url = await writeCatalog(s, "/srv/releases.json");
  const loaded = await loadCatalogs(s.ctx, { urls: [url] });
  assert.equal(loaded.catalogs.length, 1);
  assert.deepEqual(loaded.skipped, []);
  assert.deepEqual(loaded.signed, { [url]: undefined });
  const r = resolveExtension(loaded.catalogs, "tool", undefined, {
    kind: "sysext",
    arch: "amd64",
  });
  assert.equal(r.version, "1.0.0");
  assert.equal(r.catalog, url);
});

test("the default catalogs come from ROOT/etc/extctl/catalogs, one URL a line", async (t) => {
  const s = await setup(t);
  // In the list, file: URLs are node paths under the root.
  await writeCatalog(s, "/srv/one.json");
  await writeCatalog(s, "/srv/two.json");
  const first = "file:///srv/one.json";
  const second = "file:///srv/two.json";
  assert.deepEqual(await defaultCatalogUrls(new Root(s.root)), []);
  await mkdir(path.join(s.root, "etc/extctl"), { recursive: true });
  await writeFile(
    path.join(s.root, DEFAULT_CATALOGS_FILE),
    `# catalogs of this node\n${first}\n\n  ${second}   # the mirror\n`,
  );
  assert.deepEqual(await defaultCatalogUrls(new Root(s.root)), [first, second]);
  const loaded = await loadCatalogs(s.ctx, {});
  assert.deepEqual(
    loaded.catalogs.map((c) => c.url),
    [first, second],
  );
});

test("no configured catalog is an error that says where to list them", async (t) => {
  const s = await setup(t);
  await assert.rejects(loadCatalogs(s.ctx, { urls: [] }), /no extension catalog is configured/);
});

test("a catalog URL of another scheme is refused, naming the schemes catalogs are read from", async (t) => {
  const s = await setup(t);
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: ["ftp://example.org/c.json"] }),
    (e: unknown) => {
      assert.ok(e instanceof ExtctlError);
      assert.match(
        e.message,
        /ftp:\/\/example\.org\/c\.json is not a catalog URL \(https:\/\/, file:\/\/ or oci:\/\/\)/,
      );
      return true;
    },
  );
});

test("an unreadable catalog is skipped with a warning; none readable names every URL", async (t) => {
  const s = await setup(t);
  const good = await writeCatalog(s, "/srv/good.json");
  await writeFile(path.join(s.root, "srv/bad.json"), "{ not json");
  const missing = `file://${s.root}/srv/missing.json`;
  const bad = `file://${s.root}/srv/bad.json`;
  const loaded = await loadCatalogs(s.ctx, { urls: [missing, bad, good] });
  assert.deepEqual(
    loaded.catalogs.map((c) => c.url),
    [good],
  );
  assert.deepEqual(
    loaded.skipped.map((x) => x.url),
    [missing, bad],
  );
  const warnings = s.log.lines.filter((l) => l.level === "warn").map((l) => l.message);
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0]!,
    /skipping the catalog file:\/\/\/.*\/srv\/missing\.json: .*does not exist/,
  );
  assert.match(warnings[1]!, /skipping the catalog file:\/\/\/.*\/srv\/bad\.json: .*not JSON/);
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [missing, bad, "http://example.org/x.json"] }),
    (e: unknown) => {
      assert.ok(e instanceof ExtctlError);
      assert.equal(e.code, "catalog");
      assert.match(
        e.message,
        /no catalog could be read: file:\/\/\/.*\/srv\/missing\.json: .*does not exist; file:\/\/\/.*\/srv\/bad\.json: .*not JSON.*; http:\/\/example\.org\/x\.json: .*https, not http/,
      );
      return true;
    },
  );
});

test("a FIFO is refused, not opened", async (t) => {
  const s = await setup(t);
  const { execFileSync } = await import("node:child_process");
  await mkdir(path.join(s.root, "srv"), { recursive: true });
  execFileSync("mkfifo", [path.join(s.root, "srv/fifo.json")]);
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [`file://${s.root}/srv/fifo.json`] }),
    /is a FIFO, not a regular file/,
  );
});

test("signatures: good, tampered and missing under the any and signed policies", async (t) => {
  const s = await setup(t);
  const signer = makeSigningCert(s.keys, "catalog-signer", { subject: "/CN=Catalog Signer" });
  const stranger = makeSigningCert(s.keys, "stranger", { type: "ec" });
  const signedUrl = await writeCatalog(s, "/srv/signed.json");
  const unsignedUrl = await writeCatalog(s, "/srv/unsigned.json");
  const signed = await signCatalog(s.ctx, {
    file: hostPath(signedUrl),
    key: signer.key,
    cert: signer.cert,
  });
  assert.equal(signed.signature, hostPath(signedUrl) + ".p7s");
  assert.match(signed.signer.subject, /Catalog Signer/);

  // Trusted through --trust, or through ROOT/etc/verity.d.
  let loaded = await loadCatalogs(s.ctx, {
    urls: [signedUrl, unsignedUrl],
    trust: [signer.cert],
  });
  assert.equal(loaded.catalogs.length, 2);
  assert.match(loaded.signed[signedUrl]!, /CN=Catalog Signer/);
  assert.equal(loaded.signed[unsignedUrl], undefined);
  await mkdir(path.join(s.root, "etc/verity.d"), { recursive: true });
  await writeFile(path.join(s.root, "etc/verity.d/catalog.crt"), await readFile(signer.cert));
  loaded = await loadCatalogs(s.ctx, { urls: [signedUrl], policy: "signed" });
  assert.match(loaded.signed[signedUrl]!, /Catalog Signer/);

  // Policy signed: the unsigned catalog is skipped, and alone it is an error.
  loaded = await loadCatalogs(s.ctx, { urls: [unsignedUrl, signedUrl], policy: "signed" });
  assert.deepEqual(
    loaded.catalogs.map((c) => c.url),
    [signedUrl],
  );
  assert.match(
    loaded.skipped[0]!.reason,
    /has no signature \(\.p7s\) and the catalog policy is signed/,
  );
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [unsignedUrl], policy: "signed" }),
    /no catalog could be read: file:\/\/\/.*\/srv\/unsigned\.json: .*no signature/,
  );

  // A signature by an untrusted key is refused even under the any policy, naming the certificates.
  await signCatalog(s.ctx, {
    file: hostPath(unsignedUrl),
    key: stranger.key,
    cert: stranger.cert,
  });
  await assert.rejects(loadCatalogs(s.ctx, { urls: [unsignedUrl] }), (e: unknown) => {
    assert.ok(e instanceof ExtctlError);
    assert.match(e.message, /file:\/\/\/.*\/srv\/unsigned\.json is signed by "CN=stranger"/);
    assert.match(e.message, /none of the 1 trusted certificates/);
    assert.match(e.message, /trusted: "CN=Catalog Signer" \(/);
    return true;
  });

  // Tampering: one byte of the signed catalog changed.
  const file = hostPath(signedUrl);
  const bytes = await readFile(file);
  bytes[bytes.indexOf("1.0.0")] = "2".charCodeAt(0);
  await writeFile(file, bytes);
  for (const policy of ["any", "signed"] as const) {
    await assert.rejects(loadCatalogs(s.ctx, { urls: [signedUrl], policy }), (e: unknown) => {
      assert.ok(e instanceof ExtctlError);
      assert.match(
        e.message,
        /the catalog file:\/\/\/.*\/srv\/signed\.json: the signature by trusted certificate "CN=Catalog Signer" .* is invalid/,
      );
      return true;
    });
  }
  // A signature file that is not a PKCS#7 at all.
  await writeFile(file + ".p7s", "garbage");
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [signedUrl] }),
    /the catalog signature is not a PKCS#7/,
  );
});

test("freshness: an older catalog than one seen before is refused, equal and newer are fine", async (t) => {
  const s = await setup(t);
  const url = await writeCatalog(s, "/srv/r.json", { generated: "2026-09-02T00:00:00Z" });
  await loadCatalogs(s.ctx, { urls: [url] });
  const state = JSON.parse(await readFile(path.join(s.root, CATALOG_STATE_FILE), "utf8")) as {
    generated: Record<string, string>;
  };
  assert.deepEqual(state.generated, { [url]: "2026-09-02T00:00:00Z" });

  await loadCatalogs(s.ctx, { urls: [url] }); // equal: fine
  await writeCatalog(s, "/srv/r.json", { generated: "2026-09-01T00:00:00Z", version: "0.9.0" });
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [url] }),
    /file:\/\/\/.*\/srv\/r\.json was generated at 2026-09-01T00:00:00Z, older than 2026-09-02T00:00:00Z seen before: a stale or replayed catalog/,
  );
  // A newer one moves the memory; a dry run (remember: false) does not.
  await writeCatalog(s, "/srv/r.json", { generated: "2026-09-03T00:00:00Z" });
  await loadCatalogs(s.ctx, { urls: [url], remember: false });
  assert.match(await readFile(path.join(s.root, CATALOG_STATE_FILE), "utf8"), /09-02/);
  await loadCatalogs(s.ctx, { urls: [url] });
  assert.match(await readFile(path.join(s.root, CATALOG_STATE_FILE), "utf8"), /09-03/);

  // Without `generated` a catalog is accepted and leaves the memory alone.
  const json = catalogJson([{ name: "tool", latest: "1.0.0", tags: ["1.0.0"] }]);
  delete json.generated;
  await writeFile(path.join(s.root, "srv/r.json"), bytesOf(json));
  const loaded = await loadCatalogs(s.ctx, { urls: [url] });
  assert.equal(loaded.catalogs[0]!.generated, undefined);
  assert.match(await readFile(path.join(s.root, CATALOG_STATE_FILE), "utf8"), /09-03/);
});

test("catalog verify: ok with the signer, refused when unsigned, untrusted or tampered", async (t) => {
  const s = await setup(t);
  const signer = makeSigningCert(s.keys, "pub");
  const url = await writeCatalog(s, "/srv/v.json");
  const file = hostPath(url);
  await assert.rejects(verifyCatalog(s.ctx, { file, trust: [signer.cert] }), /has no signature/);
  await signCatalog(s.ctx, { file, key: signer.key, cert: signer.cert });
  const ok = await verifyCatalog(s.ctx, { file, trust: [signer.cert] });
  assert.equal(ok.layers, 1);
  assert.match(ok.signer.subject, /CN=pub/);
  await assert.rejects(verifyCatalog(s.ctx, { file }), /none of the 0 trusted certificates/);
  await writeFile(file, Buffer.concat([await readFile(file), Buffer.from(" ")]));
  await assert.rejects(
    verifyCatalog(s.ctx, { file, trust: [signer.cert] }),
    /signed digest does not match the catalog|is invalid/,
  );
  // Only a valid catalog is signed.
  await writeFile(file, "[]");
  await assert.rejects(
    signCatalog(s.ctx, { file, key: signer.key, cert: signer.cert }),
    /top level is not an object/,
  );
});

test("the machine-id is read under the root; junk or none places the node in no wave", async (t) => {
  const s = await setup(t);
  const root = new Root(s.root);
  assert.equal(await readMachineId(root), undefined);
  await writeFile(path.join(s.root, "etc/machine-id"), "uninitialized\n");
  assert.equal(await readMachineId(root), undefined);
  await writeFile(path.join(s.root, "etc/machine-id"), "0123456789ABCDEF0123456789abcdef\n");
  assert.equal(await readMachineId(root), "0123456789abcdef0123456789abcdef");
});

test("a catalog generated far ahead of the clock is accepted but its time is not remembered", async (t) => {
  const s = await setup(t);
  const url = await writeCatalog(s, "/srv/f.json", { generated: "2026-09-02T00:00:00Z" });
  await loadCatalogs(s.ctx, { urls: [url] });
  const ahead = new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  await writeCatalog(s, "/srv/f.json", { generated: ahead });
  const loaded = await loadCatalogs(s.ctx, { urls: [url] });
  assert.equal(loaded.catalogs.length, 1);
  assert.match(s.log.text(), /more than a day ahead of this node's clock; not remembering/);
  assert.match(await readFile(path.join(s.root, CATALOG_STATE_FILE), "utf8"), /2026-09-02/);
});
