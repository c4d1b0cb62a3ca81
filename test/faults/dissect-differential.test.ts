// The fault suite's differential dissection target: many more seeded random GPT layouts and
// random grafts onto a signed DDI than the end-to-end test tries, each judged by the real
// systemd-dissect on PATH and by `extctl inspect --json` / `extctl verify`. A run's seed is printed
// (FAULT_SEED, default 1; scripts/faults.sh draws a fresh one) and replays with it; a failing case is named with its layout so it can join the named
// regression cases in test/e2e/dissect-differential.test.ts.
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import {
  buildSignedDdi,
  extctlPick,
  gptImage,
  graft,
  randomGrafts,
  randomRecipes,
  squashfs,
  systemdMounts,
  systemdPick,
  systemdVersion,
} from "../helpers/crafted-ddi.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";
import { faultTrials, recordFaults } from "./lib.js";

test("random layouts and grafts: extctl designates what systemd-dissect mounts and never admits unverified data", async (t) => {
  if (!requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "openssl"], { root: true }))
    return;
  // CI replays one seed (every run sees the same layouts); scripts/faults.sh draws a new one.
  const seed = Number(process.env.FAULT_SEED) || 1;
  const count = faultTrials() * 3;
  const version = systemdVersion();
  t.diagnostic(`seed ${seed} (FAULT_SEED=${seed} replays it), systemd ${version}`);
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const problems: string[] = [];

  for (const [i, r] of randomRecipes(seed, count).entries()) {
    const work = path.join(dir, `layout${i}`);
    await mkdir(work);
    const file = path.join(work, "case.raw");
    await writeFile(file, await gptImage(work, r, fs));
    const want = systemdPick(file);
    const got = await extctlPick(file, version);
    if (want !== got)
      problems.push(`${r.name}: systemd ${want}, extctl ${got} ${JSON.stringify(r.parts)}`);
  }

  const { file: signed, cert } = await buildSignedDdi(dir);
  for (const [i, g] of randomGrafts(seed, count).entries()) {
    const file = path.join(dir, `graft${i}.raw`);
    await graft(signed, g, file, fs);
    const want = systemdPick(file);
    const got = await extctlPick(file, version);
    if (want !== got)
      problems.push(`${g.name}: systemd ${want}, extctl ${got} ${JSON.stringify(g)}`);
    const verify = await runExtctl(["verify", "--json", "--trust", cert, file]);
    if (verify.code !== 0) continue;
    const data = (systemdMounts(file) ?? []).filter(
      (m) => m.designator === "root" || m.designator === "usr",
    );
    if (data.length === 0 || data.some((m) => m.verity !== "signed" || m.partno !== 1))
      problems.push(`${g.name}: verify admits it, systemd mounts ${JSON.stringify(data)}`);
  }

  await recordFaults({
    name: `differential dissection against systemd-dissect ${version} (random layouts and grafts, seed ${seed})`,
    kind: "fuzz",
    trials: 1,
    survived: problems.length === 0 ? 1 : 0,
    inputs: count * 2,
    lost: 0,
  });
  assert.deepEqual(problems, []);
});
