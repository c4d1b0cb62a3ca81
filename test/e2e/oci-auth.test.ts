// Registry authentication against a real docker-registry: htpasswd Basic auth and token auth
// (a token server signing ES256 JWTs), with credentials from --creds or an auth file.
import assert from "node:assert/strict";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { ociSource } from "../../src/domain/sources/oci/index.js";
import { publish } from "../../src/operations/publish.js";
import { createContext } from "../../src/util/context.js";
import type { Logger } from "../../src/util/log.js";
import { requirePeers } from "../helpers/peers.js";
import { inspectRaw, startRegistry } from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { stubImage } from "../helpers/stub-image.js";

const PEERS = ["docker-registry", "skopeo", "htpasswd", "openssl"];
const silent: Logger = { verbosity: "quiet", warn() {}, info() {}, debug() {} };
// No auth file from the machine running the tests may leak in.
const cleanEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

async function store(t: TestContext, env: NodeJS.ProcessEnv = cleanEnv) {
  const root = await tempRoot(t);
  const storeDir = path.join(root, "var/lib/kairos/extensions");
  await mkdir(storeDir, { recursive: true });
  return { storeDir, ctx: createContext({ root, log: silent, env }) };
}

async function imageFile(t: TestContext) {
  const dir = await tempDir(t);
  const data = Buffer.alloc(20_000, 0x5a);
  stubImage("private").copy(data, 0, 0, 64); // install admits only what looks like an image
  data.write("secret extension", 100);
  const file = path.join(dir, "private.sysext.raw");
  await writeFile(file, data);
  return { file, data };
}

test("htpasswd: 401 without credentials, works with --creds and with an auth file", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t, { kind: "htpasswd", users: { alice: "s3cret" } });
  const { file, data } = await imageFile(t);
  const ref = `oci://${registry.host}/private/ext:1`;
  const insecureRegistries = [registry.host];

  await assert.rejects(
    publish(createContext({ log: silent, env: cleanEnv }), {
      image: file,
      reference: ref,
      insecureRegistries,
    }),
    (e: Error & { code?: string }) =>
      e.code === "registry" && /HTTP 401/.test(e.message) && /without credentials/.test(e.message),
  );
  await publish(createContext({ log: silent, env: cleanEnv }), {
    image: file,
    reference: ref,
    insecureRegistries,
    creds: "alice:s3cret",
  });
  assert.match(inspectRaw(`${registry.host}/private/ext:1`, "alice:s3cret"), /kairos\.sysext/);

  const anonymous = await store(t);
  await assert.rejects(
    ociSource.fetch(anonymous.ctx, {
      uri: ref,
      kind: "sysext",
      storeDir: anonymous.storeDir,
      insecureRegistries,
    }),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === "registry" && /HTTP 401/.test(e.message) && /--creds/.test(e.hint ?? ""),
  );
  assert.deepEqual(await readdir(anonymous.storeDir), []);

  const wrong = await store(t);
  await assert.rejects(
    ociSource.fetch(wrong.ctx, {
      uri: ref,
      kind: "sysext",
      storeDir: wrong.storeDir,
      insecureRegistries,
      creds: "alice:wrong",
    }),
    (e: Error & { code?: string }) => e.code === "registry" && /--creds/.test(e.message),
  );
  assert.deepEqual(await readdir(wrong.storeDir), []);

  const withCreds = await store(t);
  await ociSource.fetch(withCreds.ctx, {
    uri: ref,
    kind: "sysext",
    storeDir: withCreds.storeDir,
    insecureRegistries,
    creds: "alice:s3cret",
  });
  assert.deepEqual(await readFile(path.join(withCreds.storeDir, "private.sysext.raw")), data);

  // The containers auth file ($REGISTRY_AUTH_FILE) is read like podman and skopeo read it.
  const authDir = await tempDir(t);
  const authFile = path.join(authDir, "auth.json");
  await writeFile(
    authFile,
    JSON.stringify({
      auths: { [registry.host]: { auth: Buffer.from("alice:s3cret").toString("base64") } },
    }),
  );
  const fromFile = await store(t, { ...cleanEnv, REGISTRY_AUTH_FILE: authFile });
  await ociSource.fetch(fromFile.ctx, {
    uri: ref,
    kind: "sysext",
    storeDir: fromFile.storeDir,
    insecureRegistries,
  });
  assert.deepEqual(await readFile(path.join(fromFile.storeDir, "private.sysext.raw")), data);

  // So is ~/.docker/config.json.
  const home = await tempDir(t);
  await mkdir(path.join(home, ".docker"));
  await writeFile(
    path.join(home, ".docker/config.json"),
    JSON.stringify({
      auths: {
        [`https://${registry.host}`]: { auth: Buffer.from("alice:s3cret").toString("base64") },
      },
    }),
  );
  const fromDocker = await store(t, { ...cleanEnv, HOME: home });
  await ociSource.fetch(fromDocker.ctx, {
    uri: ref,
    kind: "sysext",
    storeDir: fromDocker.storeDir,
    insecureRegistries,
  });
  assert.deepEqual(await readFile(path.join(fromDocker.storeDir, "private.sysext.raw")), data);
});

test("token auth: Bearer tokens from the realm, refused without credentials, reused until they expire", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t, { kind: "token", users: { bob: "hunter2" } });
  const { file, data } = await imageFile(t);
  const ref = `oci://${registry.host}/team/ext:2`;
  const insecureRegistries = [registry.host];
  const creds = "bob:hunter2";

  const pushed = await publish(createContext({ log: silent, env: cleanEnv }), {
    image: file,
    reference: ref,
    insecureRegistries,
    creds,
  });
  // One token covers the whole push: the challenge is answered once, then the token is reused.
  assert.equal(registry.tokenRequests(), 1);

  const anonymous = await store(t);
  await assert.rejects(
    ociSource.fetch(anonymous.ctx, {
      uri: ref,
      kind: "sysext",
      storeDir: anonymous.storeDir,
      insecureRegistries,
    }),
    (e: Error & { code?: string }) =>
      e.code === "registry" && /token server/.test(e.message) && /anonymous/.test(e.message),
  );
  assert.deepEqual(await readdir(anonymous.storeDir), []);

  const before = registry.tokenRequests();
  const withCreds = await store(t);
  const fetched = await ociSource.fetch(withCreds.ctx, {
    uri: pushed.pinned,
    kind: "sysext",
    storeDir: withCreds.storeDir,
    insecureRegistries,
    creds,
  });
  assert.equal(fetched[0]?.sha256, pushed.layer.digest.slice(7));
  assert.deepEqual(await readFile(path.join(withCreds.storeDir, "private.sysext.raw")), data);
  assert.equal(registry.tokenRequests() - before, 1, "a pull needs one token");
});
