import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import {
  authFiles,
  lookupCredentials,
  parseChallenge,
  parseCreds,
  parseTokenResponse,
} from "../../../../../src/domain/sources/oci/auth.js";
import { tempDir } from "../../../../helpers/tmp.js";

test("a Bearer challenge yields realm, service and scope", () => {
  const c = parseChallenge(
    'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
  );
  assert.equal(c?.scheme, "bearer");
  assert.deepEqual(c?.params, {
    realm: "https://auth.example/token",
    service: "registry.example",
    scope: "repository:a/b:pull,push",
  });
  assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: "basic", params: { realm: "x" } });
});

test("--creds splits at the first colon and needs a user", () => {
  assert.deepEqual(parseCreds("u:p:q"), { username: "u", password: "p:q", origin: "--creds" });
  assert.throws(
    () => parseCreds(":p"),
    (e: Error & { code?: string }) => e.code === "usage",
  );
  assert.throws(
    () => parseCreds("nocolon"),
    (e: Error & { code?: string }) => e.code === "usage",
  );
});

test("tokens expire early by their expires_in, 60 s when absent", () => {
  const now = 1_000_000;
  assert.deepEqual(parseTokenResponse({ token: "t", expires_in: 300 }, now), {
    header: "Bearer t",
    expiresAt: now + 300_000 - 5000,
  });
  assert.equal(parseTokenResponse({ access_token: "a" }, now).expiresAt, now + 55_000);
  assert.throws(
    () => parseTokenResponse({}, now),
    (e: Error & { code?: string }) => e.code === "registry",
  );
});

test("auth files are read in podman's order and match registry keys in docker's spellings", async (t) => {
  const dir = await tempDir(t);
  const first = path.join(dir, "auth.json");
  const docker = path.join(dir, "home/.docker/config.json");
  assert.deepEqual(
    authFiles({
      REGISTRY_AUTH_FILE: first,
      XDG_RUNTIME_DIR: "/run/u",
      HOME: path.join(dir, "home"),
    }),
    [first, "/run/u/containers/auth.json", docker],
  );
  await writeFile(
    first,
    JSON.stringify({
      auths: {
        "reg.example/team": { auth: Buffer.from("team:t").toString("base64") },
        "https://reg.example": { username: "all", password: "a" },
        "https://index.docker.io/v1/": { auth: Buffer.from("hub:h").toString("base64") },
      },
    }),
  );
  const env = { REGISTRY_AUTH_FILE: first };
  assert.equal((await lookupCredentials("reg.example", "team/x", env))?.username, "team");
  assert.equal((await lookupCredentials("reg.example", "other/x", env))?.username, "all");
  assert.equal((await lookupCredentials("docker.io", "library/alpine", env))?.password, "h");
  assert.equal(await lookupCredentials("elsewhere.example", "x", env), undefined);
  const warnings: string[] = [];
  await writeFile(first, "{not json");
  assert.equal(
    await lookupCredentials("reg.example", "x", env, (m) => warnings.push(m)),
    undefined,
  );
  assert.match(warnings[0] ?? "", /not valid JSON/);
});

test("auth file keys are matched by the registry's canonical identity, repository scope first", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "auth.json");
  const entry = (u: string) => ({ auth: Buffer.from(`${u}:pw`).toString("base64") });
  await writeFile(
    file,
    JSON.stringify({
      auths: {
        "https://LOCALHOST:05001/v2/": entry("host"),
        "127.1:5001/exts": entry("scoped"),
        "300.1:5001": entry("never"),
      },
    }),
  );
  const env = { REGISTRY_AUTH_FILE: file };
  assert.equal((await lookupCredentials("localhost:5001", "exts/a", env))?.username, "host");
  assert.equal((await lookupCredentials("127.0.0.1:5001", "exts/a", env))?.username, "scoped");
  assert.equal(await lookupCredentials("127.0.0.1:5001", "other/a", env), undefined);
});
