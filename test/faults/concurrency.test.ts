// Load: 20 concurrent install/enable/disable runs on one root end in a consistent state, and no
// run fails except by waiting for the lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { checkStore, extctl, faultTrials, recordFaults, sha256, type KilledRun } from "./lib.js";
import { randomImageBytes } from "../helpers/stub-image.js";

const CONCURRENT = 20;

test("20 concurrent install/enable/disable runs on one root stay consistent", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const dir = await tempDir(t);
  const names = ["alpha", "beta", "gamma", "delta"];
  const complete = new Set<string>();
  for (const name of names) {
    for (const variant of [0, 1]) {
      const data = randomImageBytes((1 << 20) + variant);
      complete.add(sha256(data));
      await writeFile(path.join(dir, `${name}-${variant}.bin`), data);
    }
  }
  const rounds = Math.max(1, Math.ceil(faultTrials() / 5));
  let runs = 0;
  let survived = 0;
  for (let round = 0; round < rounds; round++) {
    const root = await tempRoot(t);
    // Every image exists before the storm, so enable/disable never race a first install.
    for (const name of names) {
      const r = await extctl([
        "--root",
        root,
        "sysext",
        "install",
        `file://${dir}/${name}-0.bin`,
        "--name",
        `${name}.raw`,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    const jobs: Promise<KilledRun>[] = [];
    for (let i = 0; i < CONCURRENT; i++) {
      const name = names[i % names.length] as string;
      const profile = ["active", "passive", "common"][i % 3] as string;
      const args =
        i % 3 === 0
          ? ["sysext", "install", `file://${dir}/${name}-${i % 2}.bin`, "--name", `${name}.raw`]
          : i % 3 === 1
            ? ["sysext", "enable", name, `--${profile}`]
            : ["sysext", "disable", names[(i + 1) % names.length] as string, `--${profile}`];
      jobs.push(extctl(["--root", root, ...args], { timeoutMs: 120_000 }));
    }
    const results = await Promise.all(jobs);
    runs += results.length;
    const failed = results.filter((r) => r.code !== 0 || r.hung);
    assert.deepEqual(
      failed.map((r) => r.stderr),
      [],
      "no run may fail under load",
    );
    // Only waits are allowed on stderr besides the normal info lines.
    for (const r of results) {
      assert.doesNotMatch(r.stderr, /error|warning/i, r.stderr);
    }
    const state = await checkStore(root, complete);
    assert.deepEqual(state.problems, []);
    assert.equal(state.images.size, names.length);
    const list = await extctl(["--root", root, "sysext", "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    survived++;
  }
  await recordFaults({
    name: `load: ${CONCURRENT} concurrent install/enable/disable on one root`,
    kind: "load",
    trials: rounds,
    survived,
    lost: rounds - survived,
    note: `${runs} runs`,
  });
});
