// Cheap catalog reads for fleets (issue 28): against a real HTTPS server that logs conditional
// headers, a check with a kept copy is one conditional request answered 304 with no body; the
// copy under /var/cache/extctl is root's (explicit modes whatever the umask), checked by sha256
// and ownership, and still goes through the anti-rollback check; no .p7s is asked for under the
// `any` policy; every request carries extctl's version; an unreachable catalog is EX_TEMPFAIL.
import assert from "node:assert/strict";
import { chmod, chown, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { CATALOG_STATE_FILE, loadCatalogs } from "../../src/domain/catalog/fetch.js";
import { CATALOG_CACHE_DIR, CACHE_DIR } from "../../src/domain/catalog/cache.js";
import { createContext } from "../../src/util/context.js";
import { EX_TEMPFAIL, ExtctlError } from "../../src/util/errors.js";
import { MemoryLogger } from "../../src/util/log.js";
import { runExtctl } from "../helpers/cli.js";
import { withHttpsServer } from "../helpers/https-server.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { bytesOf, catalogJson } from "../unit/domain/catalog/fixtures.js";

const USER_AGENT = /^extctl\/\d+\.\d+\.\d+\S* \(Node\.js\/\d+\.\d+\.\d+; linux-(x64|arm64)\)$/;

async function setup(t: TestContext) {
  const root = await tempRoot(t);
  const server = await withHttpsServer(t, { dir: path.join(await tempDir(t), "tls") });
  const catalog = (generated: string) =>
    bytesOf(
      catalogJson([{ name: "gpg", latest: "2.55.0", tags: ["2.54.1", "2.55.0"] }], generated),
    );
  server.addFile("releases.json", catalog("2026-09-01T08:24:03Z"));
  const log = new MemoryLogger();
  const ctx = createContext({ root, log });
  const url = server.url("releases.json");
  const load = () => loadCatalogs(ctx, { urls: [url], caCerts: [server.caCert] });
  return { root, server, catalog, log, ctx, url, load };
}

test("a kept catalog is checked with one conditional request: 304, no body, no .p7s", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const s = await setup(t);
  // Modes are explicit: a permissive umask changes nothing.
  const umask = process.umask(0);
  t.after(() => process.umask(umask));

  const first = await s.load();
  assert.equal(first.catalogs[0]?.generated, "2026-09-01T08:24:03Z");
  assert.equal(s.server.requests.length, 1, JSON.stringify(s.server.requests));
  const [plain] = s.server.requests;
  assert.equal(plain?.status, 200);
  assert.equal(plain?.ifNoneMatch, undefined);
  assert.equal(plain?.ifModifiedSince, undefined);
  assert.match(plain?.userAgent ?? "", USER_AGENT);

  const cacheDir = path.join(s.root, CATALOG_CACHE_DIR);
  assert.equal((await stat(path.join(s.root, CACHE_DIR))).mode & 0o7777, 0o755);
  assert.equal((await stat(cacheDir)).mode & 0o7777, 0o700);
  const files = await readdir(cacheDir);
  assert.equal(files.filter((f) => !f.startsWith(".")).length, 2, files.join(" "));
  for (const file of files) {
    assert.equal((await stat(path.join(cacheDir, file))).mode & 0o7777, 0o600, file);
  }

  const second = await s.load();
  assert.deepEqual(second.catalogs[0]?.layers, first.catalogs[0]?.layers);
  assert.equal(s.server.requests.length, 2);
  const conditional = s.server.requests[1];
  assert.equal(conditional?.status, 304);
  assert.equal(conditional?.bodyBytes, 0);
  assert.match(conditional?.ifNoneMatch ?? "", /^"v\d+-/);
  assert.ok(conditional?.ifModifiedSince, "If-Modified-Since is sent too");
  assert.ok(!s.server.requests.some((r) => r.path.endsWith(".p7s")), "no signature request");

  // A new catalog is a 200 with the body, and becomes the kept copy.
  s.server.addFile("releases.json", s.catalog("2026-09-02T08:00:00Z"));
  const third = await s.load();
  assert.equal(third.catalogs[0]?.generated, "2026-09-02T08:00:00Z");
  assert.equal(s.server.requests[2]?.status, 200);
  await s.load();
  assert.equal(s.server.requests[3]?.status, 304);

  // The signed policy needs a signature, so it asks for one (and refuses the unsigned catalog).
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [s.url], caCerts: [s.server.caCert], policy: "signed" }),
    /has no signature \(\.p7s\) and the catalog policy is signed/,
  );
  assert.ok(s.server.requests.some((r) => r.path.endsWith("releases.json.p7s")));
});

test("a 304 still goes through the anti-rollback check of the kept copy", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const s = await setup(t);
  await s.load();
  // A newer catalog was seen from this URL since (as through another path): the kept copy,
  // reused on a 304, is now a rollback and is refused like a served one would be.
  const state = { generated: { [s.url]: "2026-09-05T00:00:00Z" } };
  await writeFile(path.join(s.root, CATALOG_STATE_FILE), JSON.stringify(state));
  await assert.rejects(
    s.load(),
    /older than 2026-09-05T00:00:00Z seen before: a stale or replayed/,
  );
  assert.equal(s.server.requests.at(-1)?.status, 304);
});

test("a kept copy that fails its sha256 or is not root's alone is a miss, not a catalog", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const s = await setup(t);
  await s.load();
  const cacheDir = path.join(s.root, CATALOG_CACHE_DIR);
  const files = (await readdir(cacheDir)).filter((f) => !f.startsWith("."));
  const body = path.join(cacheDir, files.find((f) => f.endsWith(".body")) as string);
  const meta = path.join(cacheDir, files.find((f) => f.endsWith(".json")) as string);

  // Tampered body: the sha256 beside the validators does not match; a plain request follows.
  const original = await readFile(body);
  await writeFile(body, Buffer.from(original.toString().replace("2.55.0", "2.99.0")));
  const loaded = await s.load();
  assert.equal(loaded.catalogs[0]?.layers[0]?.latest, "2.55.0");
  assert.equal(s.server.requests.at(-1)?.status, 200);
  assert.equal(s.server.requests.at(-1)?.ifNoneMatch, undefined);
  assert.ok(s.log.lines.some((l) => /does not match its recorded sha256/.test(l.message)));
  // The 200 rewrote the copy: the next check is conditional again.
  await s.load();
  assert.equal(s.server.requests.at(-1)?.status, 304);

  // Writable by others, or owned by someone else: ignored with a warning.
  await chmod(meta, 0o666);
  await s.load();
  assert.equal(s.server.requests.at(-1)?.status, 200);
  assert.ok(s.log.lines.some((l) => /not owned by root or writable by others/.test(l.message)));
  await s.load();
  assert.equal(s.server.requests.at(-1)?.status, 304, "rewritten with 0600");
  await chown(meta, 65534, 65534);
  await s.load();
  assert.equal(s.server.requests.at(-1)?.status, 200);
  await chmod(cacheDir, 0o777);
  await s.load();
  assert.equal(s.server.requests.at(-1)?.status, 200, "a directory others may write is ignored");
  assert.equal((await stat(cacheDir)).mode & 0o7777, 0o700, "and made 0700 again");
});

test("an unreachable or failing catalog is EX_TEMPFAIL (75), an invalid one is 1", async (t) => {
  if (!requirePeers(t, ["openssl"])) return;
  const s = await setup(t);
  const temporary = (e: unknown) => {
    assert.ok(e instanceof ExtctlError, String(e));
    assert.equal(e.exitCode, EX_TEMPFAIL, e.message);
    return true;
  };
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: ["https://127.0.0.1:1/releases.json"], timeoutMs: 5000 }),
    temporary,
  );
  await assert.rejects(
    loadCatalogs(s.ctx, {
      urls: [s.server.url("releases.json", "error")],
      caCerts: [s.server.caCert],
    }),
    temporary,
  );
  await assert.rejects(
    loadCatalogs(s.ctx, {
      urls: ["https://extctl-no-such-host.invalid/releases.json"],
      timeoutMs: 5000,
    }),
    temporary,
  );
  s.server.addFile("broken.json", Buffer.from("{ not json"));
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [s.server.url("broken.json")], caCerts: [s.server.caCert] }),
    (e: unknown) => e instanceof ExtctlError && e.exitCode === 1,
  );
  // Through the CLI: exit code 75 and the reason.
  const cli = await runExtctl([
    "--root",
    s.root,
    "sysext",
    "install",
    "gpg",
    "--catalog",
    "https://127.0.0.1:1/releases.json",
  ]);
  assert.equal(cli.code, EX_TEMPFAIL, cli.stdout + cli.stderr);
  assert.match(cli.stderr, /connection refused/);
});
