// Crash safety of the versioned store (issue 14): `upgrade --all` and `rollback` of an extension
// installed by name are killed with SIGKILL (the whole process group) at random moments.
//
// After every kill each profile link still leads to NAME.raw, NAME.raw is exactly one complete,
// published version, record.json parses, and every file in .versions/NAME is a complete published
// version, the record, or a temp of a dead process. A rerun of `upgrade --all` then succeeds,
// sweeps the temps and leaves the newest version current (or, after a rollback that took effect,
// the version rolled back to, since upgrade does not retake a version rolled back from).
//
// Trials alternate upgrade and rollback; FAULT_TRIALS sets how many (10 in CI, 100 in
// scripts/faults.sh).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, readFile, readdir, readlink, rm } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { catalogFixture, type Published } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import {
  checkStore,
  extctl,
  faultTrials,
  randomBetween,
  recordFaults,
  sha256File,
  type KilledRun,
} from "./lib.js";

const TRIALS = faultTrials();
const NAME = "crashver";
const STORE = "var/lib/kairos/extensions";
const PROFILES = ["active", "common"] as const;
/** Incompressible payload per version, so that a kill can land inside the pull. */
const PAYLOAD = 6 << 20;

interface Versions {
  v1: Published;
  v2: Published;
  v3: Published;
}

/** What is wrong with the store of `root` right now (temps of dead processes allowed). */
async function lifecycleProblems(
  root: string,
  published: ReadonlySet<string>,
  options: { allowTemps: boolean },
): Promise<{ problems: string[]; current?: string; record?: { rolledBack?: string[] } }> {
  const problems: string[] = [];
  const store = path.join(root, STORE);
  // The generic invariants (no partial image under a visible name, no dangling link, temps of
  // dead processes only); the versions dir is checked below, the generic check does not know it.
  const generic = await checkStore(root, published, options);
  problems.push(...generic.problems.filter((p) => !p.endsWith("/.versions: unexpected directory")));

  for (const profile of PROFILES) {
    const link = path.join(store, profile, `${NAME}.raw`);
    const target = await readlink(link).catch(() => undefined);
    if (target !== `../${NAME}.raw`)
      problems.push(`${profile}/${NAME}.raw -> ${target ?? "missing"}`);
  }
  const main = path.join(store, `${NAME}.raw`);
  const st = await lstat(main).catch(() => undefined);
  let current: string | undefined;
  if (!st?.isFile()) problems.push(`${NAME}.raw is ${st ? "not a regular file" : "missing"}`);
  else {
    current = await sha256File(main);
    if (!published.has(current)) problems.push(`${NAME}.raw is no published version (${current})`);
  }

  const versionsDir = path.join(store, ".versions", NAME);
  // A record entry whose file is gone (a prune killed between the delete and the record write)
  // is allowed: every run reconciles the record with the files first.
  let record: { rolledBack?: string[] } | undefined;
  try {
    record = JSON.parse(await readFile(path.join(versionsDir, "record.json"), "utf8")) as {
      rolledBack?: string[];
    };
  } catch (e) {
    problems.push(`record.json does not parse: ${(e as Error).message}`);
  }
  let sameInode = false;
  for (const entry of await readdir(versionsDir, { withFileTypes: true })) {
    const file = path.join(versionsDir, entry.name);
    if (entry.name === "record.json") continue;
    if (entry.name.startsWith(".extctl-")) {
      const pid = Number(/^\.extctl-[a-z]+-(\d+)-/.exec(entry.name)?.[1]);
      if (!(pid > 0)) problems.push(`.versions/${NAME}/${entry.name}: a temp without a pid`);
      else if (alive(pid)) problems.push(`.versions/${NAME}/${entry.name}: temp of live ${pid}`);
      if (!options.allowTemps) problems.push(`.versions/${NAME}/${entry.name}: temp not swept`);
      continue;
    }
    if (!entry.isFile()) {
      problems.push(`.versions/${NAME}/${entry.name}: not a regular file`);
      continue;
    }
    const digest = await sha256File(file);
    if (!published.has(digest))
      problems.push(`.versions/${NAME}/${entry.name}: partial or unknown (${digest})`);
    if (st && (await lstat(file)).ino === st.ino) sameInode = true;
  }
  // NAME.raw must be one of the kept versions (a hard link), or rollback has nothing to go to.
  if (st?.isFile() && !sameInode) problems.push(`${NAME}.raw is none of the kept version files`);
  return { problems, ...(current ? { current } : {}), ...(record ? { record } : {}) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A copy of a prepared root (hard links inside it preserved, as the store relies on them). */
async function copyRoot(template: string, into: string): Promise<string> {
  await rm(into, { recursive: true, force: true });
  execFileSync("cp", ["-a", template, into]);
  return into;
}

test("kill -9 during upgrade --all and rollback leaves every profile on exactly one complete, published version", async (t) => {
  if (!requirePeers(t, ["docker-registry", "mksquashfs", "openssl"], { root: true })) return;
  const f = await catalogFixture(t);
  const payload = (v: string) => ({
    [`usr/share/${NAME}/payload-${v}`]: randomBytes(PAYLOAD).toString("base64"),
  });
  const v: Versions = {
    v1: await f.publishVersion(NAME, "1.0.0", undefined, payload("1")),
    v2: await f.publishVersion(NAME, "1.1.0", undefined, payload("2")),
    v3: await f.publishVersion(NAME, "1.2.0", undefined, payload("3")),
  };
  const published = new Set([v.v1.sha256, v.v2.sha256, v.v3.sha256]);
  const catalog = (offered: Published[]) =>
    f.catalogJson({
      [NAME]: {
        latest: (offered.at(-1) as Published).version,
        tags: offered.map((p) => ({ version: p.version, published: p })),
      },
    });
  const url = f.serveCatalog("releases.json", catalog([v.v1]));
  const net = ["--catalog", url, ...f.net];
  const cli = async (root: string, ...args: string[]) => {
    const r = await extctl(["--root", root, "sysext", ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r;
  };

  // Three starting points, each copied afresh for every trial:
  // - upgrade: 1.0.0 installed by name (a constraint, so upgrade moves it), enabled in active
  //   and common; the catalog offers 1.1.0 and 1.2.0;
  // - prune: the same already upgraded to 1.1.0 (1.0.0 kept), upgraded with --keep 1, so that
  //   the kill can also land in the deletion of 1.0.0;
  // - rollback: the same upgraded straight to 1.2.0, rolled back to 1.0.0.
  const upgradeTemplate = await tempRoot(t);
  await cli(upgradeTemplate, "install", `${NAME}@^1.0`, ...net);
  for (const profile of PROFILES) await cli(upgradeTemplate, "enable", NAME, `--${profile}`);
  const scratch = await tempDir(t);
  const pruneTemplate = path.join(scratch, "prune-template");
  const rollbackTemplate = path.join(scratch, "rollback-template");
  f.server.addFile("releases.json", Buffer.from(catalog([v.v1, v.v2])));
  await copyRoot(upgradeTemplate, pruneTemplate);
  await cli(pruneTemplate, "upgrade", "--all", ...net);
  f.server.addFile("releases.json", Buffer.from(catalog([v.v1, v.v2, v.v3])));
  await copyRoot(upgradeTemplate, rollbackTemplate);
  await cli(rollbackTemplate, "upgrade", "--all", ...net);
  assert.equal(await sha256File(path.join(rollbackTemplate, STORE, `${NAME}.raw`)), v.v3.sha256);
  assert.equal(await sha256File(path.join(pruneTemplate, STORE, `${NAME}.raw`)), v.v2.sha256);

  const trialRoot = path.join(scratch, "root");
  type Op = "upgrade" | "prune" | "rollback";
  const upgradeArgs = (root: string) => ["--root", root, "sysext", "upgrade", "--all", "--json"];
  const commands: Record<Op, (root: string) => string[]> = {
    upgrade: (root) => [...upgradeArgs(root), ...net],
    prune: (root) => [...upgradeArgs(root), "--keep", "1", ...net],
    rollback: (root) => ["--root", root, "sysext", "rollback", NAME, "--json"],
  };
  const templates: Record<Op, string> = {
    upgrade: upgradeTemplate,
    prune: pruneTemplate,
    rollback: rollbackTemplate,
  };
  const cycle: Op[] = ["upgrade", "rollback", "prune", "rollback"];
  const calm: Record<Op, number> = { upgrade: 0, prune: 0, rollback: 0 };
  // The fastest of three unkilled runs: one slow calibration run (a busy machine) would put the
  // late kills after the end of every trial.
  for (const op of ["upgrade", "prune", "rollback"] as const) {
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const root = await copyRoot(templates[op], trialRoot);
      const r = await extctl(commands[op](root));
      assert.equal(r.code, 0, `calibration ${op}: ${r.stderr}`);
      times.push(r.ms);
    }
    calm[op] = Math.min(...times);
  }
  const versionOf = new Map([v.v1, v.v2, v.v3].map((p) => [p.sha256, p.version]));

  let survived = 0;
  let hitMidway = 0;
  const failures: string[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const op = cycle[i % cycle.length] as Op;
    const root = await copyRoot(templates[op], trialRoot);
    // Half the kills anywhere in the run; half in its last fifth, where the record is written,
    // NAME.raw switched and old versions pruned (a few ms after a pull of hundreds).
    const [from, to] = Math.floor(i / cycle.length) % 2 === 0 ? [0.1, 1.05] : [0.8, 1.02];
    const killAfterMs = randomBetween(calm[op] * from, calm[op] * to);
    const crashed: KilledRun = await extctl(commands[op](root), { killAfterMs });
    const problems: string[] = [];
    if (crashed.hung) problems.push("the killed run hung");
    if (crashed.killed) hitMidway++;
    else if (crashed.code !== 0) problems.push(`the run failed unkilled: ${crashed.stderr.trim()}`);
    const after = await lifecycleProblems(root, published, { allowTemps: true });
    problems.push(...after.problems.map((p) => `after the kill at ${killAfterMs} ms: ${p}`));

    const rerun = await extctl(commands.upgrade(root));
    if (rerun.code !== 0 && rerun.code !== 3)
      problems.push(`the rerun exited ${rerun.code}: ${rerun.stdout}${rerun.stderr.trim()}`);
    const settled = await lifecycleProblems(root, published, { allowTemps: false });
    problems.push(...settled.problems.map((p) => `after the rerun: ${p}`));
    // Upgrade does not retake a version rolled back from: after a rollback that took effect the
    // rerun keeps 1.0.0 and says why; otherwise the newest version is current.
    const rolledBack = settled.record?.rolledBack?.includes(v.v3.version) ?? false;
    const expected = op === "rollback" && rolledBack ? [v.v3.sha256, v.v1.sha256] : [v.v3.sha256];
    if (!expected.includes(settled.current ?? ""))
      problems.push(
        `after the rerun ${NAME}.raw is ${settled.current} (want ${op === "rollback" && rolledBack ? "1.2.0 or 1.0.0" : "1.2.0"})`,
      );
    // extctl's own view agrees with the files: the version it calls current is NAME.raw's.
    const listed = await extctl([
      "--root",
      root,
      "sysext",
      "versions",
      NAME,
      "--installed",
      "--json",
    ]);
    const said =
      listed.code === 0 ? (JSON.parse(listed.stdout) as { current?: string }).current : undefined;
    if (said === undefined || said !== versionOf.get(settled.current ?? ""))
      problems.push(
        `versions --json calls ${said ?? "nothing"} current, ${NAME}.raw is ${versionOf.get(settled.current ?? "") ?? "unknown"}: ${listed.stderr.trim()}`,
      );
    if (problems.length === 0) survived++;
    else
      failures.push(
        `trial ${i} (${op}, ${crashed.killed ? "killed" : "ran out"}): ${problems.join("; ")}`,
      );
  }
  await recordFaults({
    name: "crash: upgrade --all and rollback (versions from a catalog, docker-registry)",
    kind: "crash",
    trials: TRIALS,
    survived,
    hitMidway,
    lost: TRIALS - survived,
    note: `calm upgrade ${calm.upgrade} ms, --keep 1 ${calm.prune} ms, rollback ${calm.rollback} ms`,
  });
  t.diagnostic(
    `upgrade/rollback: ${survived}/${TRIALS} survived, ${hitMidway} kills hit mid-run (calm upgrade ${calm.upgrade} ms, --keep 1 ${calm.prune} ms, rollback ${calm.rollback} ms)`,
  );
  assert.deepEqual(failures, []);
});
