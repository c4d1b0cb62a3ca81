// https: installs against a real HTTPS server on 127.0.0.1 with a throwaway CA: a good download,
// and every failure (unknown CA, wrong sha256, 404, a connection cut mid-body) leaving the store
// exactly as it was.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { withHttpsServer } from "../helpers/https-server.js";
import { stubImage } from "../helpers/stub-image.js";
import type { InstallResult } from "../../src/index.js";

const STORE = "var/lib/kairos/extensions";
// Several of the store writer's 4 MiB slabs, and not a whole number of TLS records.
// Random bytes behind a squashfs magic: install stores only what looks like an image.
const payload = randomBytes(20 * 1024 * 1024 + 17);
stubImage("tool").copy(payload, 0, 0, 64);
const digest = createHash("sha256").update(payload).digest("hex");

async function storeEntries(root: string): Promise<string[]> {
  return (await readdir(path.join(root, STORE)).catch(() => [] as string[])).sort();
}

async function setup(t: TestContext) {
  const root = await tempRoot(t);
  const server = await withHttpsServer(t, { dir: await tempDir(t) });
  server.addFile("tool.sysext.raw", payload);
  return { root, server };
}

describe("install over https", () => {
  test("a good download lands in the store byte for byte, TLS checked against --ca-cert", async (t) => {
    if (!requirePeers(t, ["openssl"])) return;
    const { root, server } = await setup(t);
    const result = await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      server.url("tool.sysext.raw"),
      "--ca-cert",
      server.caCert,
      "--sha256",
      digest,
      "--json",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(jsonOf<InstallResult>(result).images[0]?.sha256, digest);
    assert.deepEqual(await readFile(path.join(root, STORE, "tool.sysext.raw")), payload);
    assert.deepEqual(await storeEntries(root), ["tool.sysext.raw"]);
  });

  const failures: {
    name: string;
    mode?: string;
    args?: (caCert: string) => string[];
    message: RegExp;
  }[] = [
    {
      name: "a server whose CA is unknown is refused",
      args: () => [],
      message: /TLS verification failed/,
    },
    {
      name: "a sha256 mismatch",
      args: (ca) => ["--ca-cert", ca, "--sha256", "0".repeat(64)],
      message: /SHA-256 mismatch.*expected 0{64}, got [0-9a-f]{64}/,
    },
    {
      name: "a 404",
      mode: "missing",
      args: (ca) => ["--ca-cert", ca],
      message: /answered HTTP 404 Not Found/,
    },
    {
      name: "a connection cut mid-body",
      mode: "truncated",
      args: (ca) => ["--ca-cert", ca],
      message: /cut|ended after/,
    },
    {
      name: "a certificate for the wrong host",
      mode: "wrong-host",
      args: (ca) => ["--ca-cert", ca],
      message: /TLS verification failed/,
    },
  ];

  for (const failure of failures) {
    test(`${failure.name} gives one clear sentence and leaves nothing in the store`, async (t) => {
      if (!requirePeers(t, ["openssl"])) return;
      const root = await tempRoot(t);
      const server = await withHttpsServer(t, {
        dir: await tempDir(t),
        ...(failure.mode === "wrong-host" ? { certificate: "wrong-host" as const } : {}),
      });
      server.addFile("tool.sysext.raw", payload);
      // A previous image of the same name must survive a failed replacement.
      const before = await runExtctl([
        "--root",
        root,
        "sysext",
        "install",
        `file://${await writeOld(t)}`,
        "--name",
        "tool.sysext.raw",
      ]);
      assert.equal(before.code, 0, before.stderr);
      const url =
        failure.mode === "missing"
          ? `${server.origin}/ok/nope.raw`
          : server.url("tool.sysext.raw", failure.mode === "truncated" ? "truncated" : "ok");
      const result = await runExtctl([
        "--root",
        root,
        "sysext",
        "install",
        url,
        ...(failure.args?.(server.caCert) ?? []),
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, failure.message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
      assert.deepEqual(await storeEntries(root), ["tool.sysext.raw"]);
      assert.deepEqual(
        await readFile(path.join(root, STORE, "tool.sysext.raw")),
        stubImage("old image"),
      );
    });
  }
});

async function writeOld(t: TestContext): Promise<string> {
  const { writeFile } = await import("node:fs/promises");
  const file = path.join(await tempDir(t), "old.raw");
  await writeFile(file, stubImage("old image"));
  return file;
}

test("an https download cut in the middle resumes with Range and If-Range and lands byte for byte", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const server = await withHttpsServer(t, { dir: path.join(dir, "certs") });
  server.addFile("tool.sysext.raw", payload);
  const root = await tempRoot(t);
  const result = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    server.url("tool.sysext.raw", "cut-once"),
    "--ca-cert",
    server.caCert,
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /cut after \d+ of \d+ bytes.*resuming/);
  assert.deepEqual(server.ranges, [`bytes=${Math.floor(payload.length / 2)}-`]);
  const stored = await readFile(path.join(root, STORE, "tool.sysext.raw"));
  assert.equal(createHash("sha256").update(stored).digest("hex"), digest);
});

test("503 and 429 with Retry-After (seconds and an HTTP-date) are retried after the wait they ask for", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const server = await withHttpsServer(t, { dir: path.join(dir, "certs") });
  server.addFile("tool.sysext.raw", payload);
  for (const mode of ["busy-once", "limited-once"] as const) {
    const root = await tempRoot(t);
    const started = Date.now();
    const result = await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      server.url("tool.sysext.raw", mode),
      "--ca-cert",
      server.caCert,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /answered HTTP (503|429); trying again in/);
    assert.ok(Date.now() - started >= 900, `${mode}: it waited ${Date.now() - started} ms`);
    assert.equal(server.hits[mode], 2);
    const stored = await readFile(path.join(root, STORE, "tool.sysext.raw"));
    assert.equal(createHash("sha256").update(stored).digest("hex"), digest);
  }
});
