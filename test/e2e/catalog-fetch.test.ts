// Catalogs over real HTTPS (a throwaway CA): a signed catalog and its .p7s are fetched and
// checked, an unreachable catalog is skipped with a warning, and a tampered or unsigned one is
// refused under the policies; `extctl catalog sign|verify` make and check the signature.
import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { loadCatalogs } from "../../src/domain/catalog/fetch.js";
import { resolveExtension } from "../../src/domain/catalog/resolve.js";
import { createContext } from "../../src/util/context.js";
import { ExtctlError } from "../../src/util/errors.js";
import { MemoryLogger } from "../../src/util/log.js";
import { runExtctl } from "../helpers/cli.js";
import { withHttpsServer } from "../helpers/https-server.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers } from "../helpers/peers.js";
import { startRegistry } from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { bytesOf, catalogJson } from "../unit/domain/catalog/fixtures.js";

async function setup(t: TestContext) {
  const root = await tempRoot(t);
  const work = await tempDir(t);
  const server = await withHttpsServer(t, { dir: path.join(work, "tls") });
  const signer = makeSigningCert(work, "catalog", { subject: "/CN=Fleet Catalog" });
  const catalogFile = path.join(work, "releases.json");
  await writeFile(
    catalogFile,
    bytesOf(
      catalogJson([
        { name: "gpg", latest: "2.55.0", tags: ["2.50.0", "2.54.0", "2.54.1", "2.55.0", "stable"] },
      ]),
    ),
  );
  const log = new MemoryLogger();
  return { root, work, server, signer, catalogFile, log, ctx: createContext({ root, log }) };
}

/** Signs the setup's catalog and pushes it (with its .p7s) to `reference` on a plain-http registry. */
async function signAndPublish(
  s: Awaited<ReturnType<typeof setup>>,
  reference: string,
  host: string,
) {
  const sign = await runExtctl([
    "catalog",
    "sign",
    s.catalogFile,
    "--key",
    s.signer.key,
    "--cert",
    s.signer.cert,
  ]);
  assert.equal(sign.code, 0, sign.stderr);
  const pushed = await runExtctl([
    "catalog",
    "publish",
    s.catalogFile,
    reference,
    "--insecure-registry",
    host,
    "--json",
  ]);
  assert.equal(pushed.code, 0, pushed.stderr);
  return JSON.parse(pushed.stdout) as { pinned: string; signed: boolean };
}

test("an https catalog signed with `extctl catalog sign` is fetched, checked and resolved", async (t) => {
  if (!requirePeers(t, ["openssl"])) return;
  const s = await setup(t);
  const signed = await runExtctl([
    "catalog",
    "sign",
    s.catalogFile,
    "--key",
    s.signer.key,
    "--cert",
    s.signer.cert,
  ]);
  assert.equal(signed.code, 0, signed.stderr);
  const verified = await runExtctl(["catalog", "verify", s.catalogFile, "--trust", s.signer.cert]);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(
    verified.stdout,
    /^OK: .*releases\.json \(1 extensions\) is signed by "CN=Fleet Catalog"/,
  );
  const untrusted = await runExtctl(["--root", s.root, "catalog", "verify", s.catalogFile]);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /none of the 0 trusted certificates/);

  s.server.addFile("releases.json", await readFile(s.catalogFile));
  s.server.addFile("releases.json.p7s", await readFile(`${s.catalogFile}.p7s`));
  const unreachable = "https://127.0.0.1:1/releases.json";
  const url = s.server.url("releases.json");
  const loaded = await loadCatalogs(s.ctx, {
    urls: [unreachable, s.server.url("missing.json"), url],
    caCerts: [s.server.caCert],
    trust: [s.signer.cert],
    policy: "signed",
    timeoutMs: 5000,
  });
  assert.deepEqual(
    loaded.catalogs.map((c) => c.url),
    [url],
  );
  assert.match(loaded.signed[url]!, /CN=Fleet Catalog/);
  const warnings = s.log.lines.filter((l) => l.level === "warn").map((l) => l.message);
  assert.equal(warnings.length, 2, warnings.join("\n"));
  assert.match(
    warnings[0]!,
    /skipping the catalog https:\/\/127\.0\.0\.1:1\/releases\.json: cannot connect .*connection refused/,
  );
  assert.match(warnings[1]!, /missing\.json answered HTTP 404/);
  // More than 8 MiB is refused, announced or not (chunked).
  s.server.addFile("huge.json", Buffer.alloc(8 * 1024 * 1024 + 1, 0x20));
  for (const mode of ["ok", "chunked"] as const) {
    await assert.rejects(
      loadCatalogs(s.ctx, { urls: [s.server.url("huge.json", mode)], caCerts: [s.server.caCert] }),
      /huge\.json is larger than 8388608 bytes/,
    );
  }
  // Without the CA the TLS check fails, and says so.
  await assert.rejects(
    loadCatalogs(s.ctx, { urls: [url] }),
    /TLS verification failed for https:\/\/127\.0\.0\.1/,
  );
  assert.equal(
    resolveExtension(loaded.catalogs, "gpg", ">= 2.50, < 2.55", { kind: "sysext", arch: "amd64" })
      .version,
    "2.54.1",
  );
});

test("over https a tampered catalog and an unsigned one are refused under the signed policy", async (t) => {
  if (!requirePeers(t, ["openssl"])) return;
  const s = await setup(t);
  const verify = await runExtctl([
    "catalog",
    "sign",
    s.catalogFile,
    "--key",
    s.signer.key,
    "--cert",
    s.signer.cert,
    "--output",
    path.join(s.work, "sig.p7s"),
  ]);
  assert.equal(verify.code, 0, verify.stderr);
  const original = await readFile(s.catalogFile);
  s.server.addFile("tampered.json", Buffer.from(original.toString().replace("2.55.0", "2.99.0")));
  s.server.addFile("tampered.json.p7s", await readFile(path.join(s.work, "sig.p7s")));
  s.server.addFile("unsigned.json", original);
  const options = { caCerts: [s.server.caCert], trust: [s.signer.cert] };
  // Under `any` the signature is not even asked for (issue 28): whoever can tamper with the
  // catalog can drop its .p7s as well, which `any` accepts; only `signed` can refuse it.
  const unchecked = await loadCatalogs(s.ctx, {
    ...options,
    urls: [s.server.url("tampered.json")],
  });
  assert.equal(unchecked.catalogs[0]?.layers[0]?.latest, "2.99.0");
  assert.ok(!s.server.requests.some((r) => r.path.endsWith(".p7s")));
  await assert.rejects(
    loadCatalogs(s.ctx, { ...options, urls: [s.server.url("tampered.json")], policy: "signed" }),
    (e: unknown) => {
      assert.ok(e instanceof ExtctlError);
      assert.match(
        e.message,
        /no catalog could be read: https:\/\/127\.0\.0\.1:\d+\/ok\/tampered\.json: the catalog .* the signature by trusted certificate "CN=Fleet Catalog" .* is invalid/,
      );
      return true;
    },
  );
  const unsigned = await loadCatalogs(s.ctx, { ...options, urls: [s.server.url("unsigned.json")] });
  assert.equal(unsigned.catalogs.length, 1);
  await assert.rejects(
    loadCatalogs(s.ctx, { ...options, urls: [s.server.url("unsigned.json")], policy: "signed" }),
    /has no signature \(\.p7s\) and the catalog policy is signed/,
  );
});

test("an oci: catalog pushed with `extctl catalog publish` is read with its signature", async (t) => {
  if (!requirePeers(t, ["openssl", "docker-registry"])) return;
  const s = await setup(t);
  const registry = await startRegistry(t);
  const reference = `oci://${registry.host}/catalogs/hadron:latest`;
  const result = await signAndPublish(s, reference, registry.host);
  assert.equal(result.signed, true);
  assert.match(
    result.pinned,
    /^oci:\/\/127\.0\.0\.1:\d+\/catalogs\/hadron:latest@sha256:[0-9a-f]{64}$/,
  );
  for (const url of [reference, result.pinned]) {
    const loaded = await loadCatalogs(s.ctx, {
      urls: [url],
      insecureRegistries: [registry.host],
      trust: [s.signer.cert],
      policy: "signed",
    });
    assert.match(loaded.signed[url]!, /CN=Fleet Catalog/);
    assert.equal(loaded.catalogs[0]!.layers[0]!.name, "gpg");
  }
  // Unsigned at another tag: fine under any, refused under signed.
  const unsignedRef = `oci://${registry.host}/catalogs/hadron:unsigned`;
  await rm(`${s.catalogFile}.p7s`);
  const unsignedPush = await runExtctl([
    "catalog",
    "publish",
    s.catalogFile,
    unsignedRef,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(unsignedPush.code, 0, unsignedPush.stderr);
  await assert.rejects(
    loadCatalogs(s.ctx, {
      urls: [unsignedRef],
      insecureRegistries: [registry.host],
      policy: "signed",
    }),
    /has no signature/,
  );
});

test("an oci: catalog is read from the registries.conf mirror while its origin is down, as an install pulls", async (t) => {
  if (!requirePeers(t, ["openssl", "docker-registry"])) return;
  const s = await setup(t);
  const mirror = await startRegistry(t);
  // The mirror holds a copy at cache/catalogs/hadron:latest; the origin is a port nobody listens on.
  await signAndPublish(s, `oci://${mirror.host}/cache/catalogs/hadron:latest`, mirror.host);
  const closed = await new Promise<string>((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(`127.0.0.1:${port}`));
    });
  });
  await mkdir(path.join(s.root, "etc/containers"), { recursive: true });
  await writeFile(
    path.join(s.root, "etc/containers/registries.conf"),
    `[[registry]]\nlocation = "${closed}/catalogs"\ninsecure = true\n\n[[registry.mirror]]\nlocation = "${mirror.host}/cache/catalogs"\ninsecure = true\n`,
  );
  const url = `oci://${closed}/catalogs/hadron:latest`;
  const log = new MemoryLogger();
  const ctx = createContext({
    root: s.root,
    log,
    env: { ...process.env, CONTAINERS_REGISTRIES_CONF: "" },
  });
  const loaded = await loadCatalogs(ctx, { urls: [url], trust: [s.signer.cert], policy: "signed" });
  assert.match(loaded.signed[url]!, /CN=Fleet Catalog/);
  assert.equal(loaded.catalogs[0]!.layers[0]!.name, "gpg");
  assert.ok(
    log.lines.some((l) =>
      new RegExp(`served by the mirror ${mirror.host}/cache/catalogs/hadron:latest`).test(
        l.message,
      ),
    ),
    log.lines.map((l) => l.message).join("\n"),
  );
  // Without the mirror the origin's failure is the error.
  await writeFile(
    path.join(s.root, "etc/containers/registries.conf"),
    `[[registry]]\nlocation = "${closed}/catalogs"\ninsecure = true\n`,
  );
  await assert.rejects(loadCatalogs(ctx, { urls: [url], policy: "any" }), /ECONNREFUSED/);
});
