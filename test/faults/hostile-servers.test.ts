// Hostile HTTPS servers (slow drip, silence, truncated body, lying Content-Length, redirect loop,
// huge headers, a certificate for another host): extctl must not hang nor leave files in the store.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import {
  startHttpsServer,
  withHttpsServer,
  type ServeMode,
  type TestHttpsServer,
} from "../helpers/https-server.js";
import { checkStore, extctl, recordFaults, sha256 } from "./lib.js";
import { randomImageBytes } from "../helpers/stub-image.js";

const IMAGE = randomImageBytes(256 << 10);
const DIGEST = sha256(IMAGE);
/** What a well-behaved client needs at most against any of these servers. */
const DEADLINE_MS = 20_000;

let timeoutFlag: boolean | undefined;
/** Whether `install` has a --timeout option (the brief asks for one; see the report). */
async function hasTimeoutFlag(): Promise<boolean> {
  if (timeoutFlag === undefined) {
    const help = await extctl(["sysext", "install", "--help"]);
    timeoutFlag = /--timeout\b/.test(help.stdout);
  }
  return timeoutFlag;
}

const counts = { trials: 0, survived: 0 };

async function hostileInstall(
  t: TestContext,
  server: TestHttpsServer,
  mode: ServeMode,
  expect: RegExp,
  extra: string[] = [],
): Promise<void> {
  counts.trials++;
  const root = await tempRoot(t);
  const timeout = (await hasTimeoutFlag()) ? ["--timeout", "3"] : [];
  const url = server.url("hostile.sysext.raw", mode);
  const args = ["--root", root, "sysext", "install", url, "--ca-cert", server.caCert];
  // Without a --timeout option a hang is certain; 5 s shows it without holding CI up.
  const deadline = timeout.length > 0 || !/silent|slow-drip/.test(mode) ? DEADLINE_MS : 5_000;
  const r = await extctl([...args, ...timeout, ...extra], { timeoutMs: deadline });
  // Whatever happened, nothing partial may be visible, and a normal install afterwards works
  // and sweeps what a killed run left.
  const after = await checkStore(root, new Set([DIGEST]), { allowTemps: true });
  assert.deepEqual(after.problems, []);
  assert.equal(after.images.size, 0, "no image may be stored from a hostile answer");
  const good = await extctl(
    [
      "--root",
      root,
      "sysext",
      "install",
      server.url("hostile.sysext.raw"),
      "--ca-cert",
      server.caCert,
    ],
    { timeoutMs: DEADLINE_MS },
  );
  assert.equal(good.code, 0, good.stderr);
  const settled = await checkStore(root, new Set([DIGEST]));
  assert.deepEqual(settled.problems, []);
  assert.equal(r.hung, false, `extctl was still running after ${deadline} ms (${mode})`);
  // A server that errs (5xx), never answers or stalls is "try later" (EX_TEMPFAIL, 75); one that
  // answers wrongly fails the install (1).
  const later = mode === "error" || mode === "silent" || mode === "slow-drip";
  assert.equal(r.code, later ? 75 : 1, r.stderr);
  assert.match(r.stderr, expect);
  assert.doesNotMatch(r.stderr, /internal error/);
  counts.survived++;
}

test("hostile HTTPS servers neither hang extctl nor leave files", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const server = await withHttpsServer(t, {
    dir: path.join(dir, "certs"),
    dripBytes: 1,
    dripIntervalMs: 200,
    hugeHeaderBytes: 1 << 20,
  });
  server.addFile("hostile.sysext.raw", IMAGE);

  await t.test("truncated body", (t) => hostileInstall(t, server, "truncated", /cut before/));
  await t.test("Content-Length longer than the body", (t) =>
    hostileInstall(t, server, "long-length", /cut before|ended after/),
  );
  await t.test("Content-Length shorter than the body, caught by --sha256", (t) =>
    hostileInstall(t, server, "short-length", /SHA-256 mismatch/, ["--sha256", DIGEST]),
  );
  await t.test("redirect loop", (t) => hostileInstall(t, server, "redirect-loop", /redirect/));
  await t.test("huge headers", (t) =>
    hostileInstall(t, server, "huge-headers", /oversized headers/),
  );
  await t.test("HTTP 500", (t) => hostileInstall(t, server, "error", /HTTP 500/));

  await t.test("certificate for the wrong host", async (t) => {
    const wrong = await startHttpsServer({
      dir: path.join(dir, "wrong"),
      certificates: server.certificates,
      certificate: "wrong-host",
    });
    t.after(() => wrong.stop());
    wrong.addFile("hostile.sysext.raw", IMAGE);
    counts.trials++;
    const root = await tempRoot(t);
    const r = await extctl(
      [
        "--root",
        root,
        "sysext",
        "install",
        wrong.url("hostile.sysext.raw"),
        "--ca-cert",
        wrong.caCert,
      ],
      { timeoutMs: DEADLINE_MS },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /TLS verification failed/);
    const state = await checkStore(root);
    assert.deepEqual(state.problems, []);
    assert.equal(state.images.size, 0);
    counts.survived++;
  });

  // --timeout 3 is a low-speed limit: silence and a one-byte drip both give up within it.
  for (const mode of ["silent", "slow-drip"] as const) {
    await t.test(`${mode} server`, (t) => hostileInstall(t, server, mode, /timed out|too slow/));
  }

  await recordFaults({
    name: "hostile HTTPS servers (7 kinds of misbehaviour, plus HTTP 500)",
    kind: "hostile-server",
    trials: counts.trials,
    survived: counts.survived,
    lost: 0,
    note: (await hasTimeoutFlag())
      ? "with --timeout 3"
      : "slow drip and silence hang extctl: no --timeout option (TODO)",
  });
  assert.ok(server.openConnections() >= 0);
});
