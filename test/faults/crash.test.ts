// Crash safety: extctl is killed with SIGKILL (its whole process group) at random moments of
// install (file:, https:) and `enable --now` (real systemd-sysext); nothing partial may remain.
//
// After every kill: each store file is a complete image, each profile and runtime link resolves,
// temp files belong to dead processes only. Then a rerun must succeed and sweep those temp files.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { withHttpsServer } from "../helpers/https-server.js";
import {
  checkStore,
  extctl,
  faultTrials,
  randomBetween,
  recordFaults,
  sha256,
  type KilledRun,
} from "./lib.js";
import { randomImageBytes } from "../helpers/stub-image.js";

const TRIALS = faultTrials();
const BIG = 24 << 20;

interface CrashPlan {
  name: string;
  root: string;
  /** Digests of complete images: any store file must have one of these. */
  complete: Set<string>;
  /** The command killed in trial i. */
  command(i: number): { args: string[]; namespace?: boolean; nodeRoot?: string };
  /** What must be true after the rerun of trial i (the rerun is the same command, untouched). */
  afterRerun?(i: number, rerun: KilledRun): Promise<void>;
  /** Put things back for the next trial. */
  reset?(i: number): Promise<void>;
}

async function crashTrials(t: TestContext, plan: CrashPlan): Promise<void> {
  // Calibrate: how long the command takes when nobody kills it.
  const first = plan.command(0);
  const calm = await extctl(first.args, first);
  assert.equal(calm.code, 0, `calibration run failed: ${calm.stderr}`);
  await plan.reset?.(0);
  let survived = 0;
  let hitMidway = 0;
  const failures: string[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const spec = plan.command(i);
    const args = spec.args;
    const killAfterMs = randomBetween(calm.ms * 0.15, calm.ms * 1.05);
    const crashed = await extctl(args, { ...spec, killAfterMs, timeoutMs: 60_000 });
    assert.equal(crashed.hung, false, `trial ${i}: the command hung`);
    if (crashed.killed) hitMidway++;
    else assert.equal(crashed.code, 0, `trial ${i}: ${crashed.stderr}`);
    const after = await checkStore(plan.root, plan.complete, { allowTemps: true });
    const rerun = await extctl(args, { ...spec, timeoutMs: 60_000 });
    const settled = await checkStore(plan.root, plan.complete);
    const problems = [
      ...after.problems.map((p) => `after the kill at ${killAfterMs} ms: ${p}`),
      ...(rerun.code === 0 ? [] : [`the rerun failed: ${rerun.stderr.trim()}`]),
      ...settled.problems.map((p) => `after the rerun: ${p}`),
    ];
    if (problems.length === 0) {
      survived++;
      await plan.afterRerun?.(i, rerun);
    } else {
      failures.push(`trial ${i}: ${problems.join("; ")}`);
    }
    await plan.reset?.(i);
  }
  await recordFaults({
    name: `crash: ${plan.name}`,
    kind: "crash",
    trials: TRIALS,
    survived,
    hitMidway,
    lost: TRIALS - survived,
  });
  t.diagnostic(`${plan.name}: ${survived}/${TRIALS} survived, ${hitMidway} kills hit mid-run`);
  assert.deepEqual(failures, []);
}

async function twoImages(dir: string): Promise<{ files: string[]; digests: Set<string> }> {
  const files: string[] = [];
  const digests = new Set<string>();
  for (const tag of ["a", "b"]) {
    const data = randomImageBytes(BIG);
    const file = path.join(dir, tag, "big.sysext.raw");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, data);
    files.push(file);
    digests.add(sha256(data));
  }
  return { files, digests };
}

test("kill -9 during install from file: leaves complete images only", async (t) => {
  if (!requirePeers(t, ["unshare"], { root: true })) return;
  const root = await tempRoot(t);
  const { files, digests } = await twoImages(await tempDir(t));
  await crashTrials(t, {
    name: "install file:",
    root,
    complete: digests,
    command: (i) => ({
      args: ["--root", root, "sysext", "install", `file://${files[i % 2]}`],
    }),
  });
});

test("kill -9 during install from https: leaves complete images only", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const root = await tempRoot(t);
  const dir = await tempDir(t);
  const { files, digests } = await twoImages(dir);
  const server = await withHttpsServer(t, { dir: path.join(dir, "certs") });
  server.addFile("a/big.sysext.raw", files[0] as string);
  server.addFile("b/big.sysext.raw", files[1] as string);
  await crashTrials(t, {
    name: "install https:",
    root,
    complete: digests,
    command: (i) => ({
      args: [
        "--root",
        root,
        "sysext",
        "install",
        `${server.origin}/ok/${i % 2 === 0 ? "a" : "b"}/big.sysext.raw`,
        "--ca-cert",
        server.caCert,
      ],
    }),
  });
});

test("kill -9 during enable --now (systemd-sysext refresh) leaves no dangling link", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs", "unshare"], { root: true })) return;
  const root = await tempRoot(t);
  const dir = await tempDir(t);
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await mkdir(path.join(tree, "usr/share/crashtool"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.crashtool"),
    "ID=debian\nVERSION_ID=12\n",
  );
  await writeFile(path.join(tree, "usr/share/crashtool/hello"), "hello\n");
  const image = path.join(dir, "crashtool.raw");
  run("mksquashfs", [tree, image, "-noappend", "-all-root", "-quiet"]);
  const installed = await extctl(["--root", root, "sysext", "install", `file://${image}`]);
  assert.equal(installed.code, 0, installed.stderr);
  const { readFile } = await import("node:fs/promises");
  const complete = new Set([sha256(await readFile(image))]);
  const enableArgs = ["--root", root, "sysext", "enable", "crashtool", "--common", "--now"].concat([
    "--refresh",
    "sysext",
    "--json",
  ]);
  await crashTrials(t, {
    name: "enable --now (refresh via systemd-sysext)",
    root,
    complete,
    command: () => ({ args: enableArgs, namespace: true, nodeRoot: root }),
    async afterRerun(i, rerun) {
      const result = JSON.parse(rerun.stdout) as { merged?: boolean };
      assert.equal(result.merged, true, `trial ${i}: the rerun did not merge: ${rerun.stdout}`);
    },
    async reset(i) {
      const off = await extctl(
        ["--root", root, "sysext", "disable", "crashtool", "--common", "--now"].concat([
          "--refresh",
          "sysext",
        ]),
        { namespace: true, nodeRoot: root },
      );
      assert.equal(off.code, 0, `trial ${i}: disable failed: ${off.stderr}`);
    },
  });
});
