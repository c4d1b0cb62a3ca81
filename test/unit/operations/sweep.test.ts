// What a killed run leaves behind (temp downloads, half-swapped links) is swept by the next run
// that takes the lock, in every store, profile and runtime dir; a live run's temps are kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { LAYOUTS } from "../../../src/domain/store/layout.js";
import { enable } from "../../../src/operations/enable.js";
import { testNode } from "../../helpers/node.js";

// No process has this pid (it is above Linux's largest pid_max).
const DEAD = 99_999_999;

test("a run sweeps the temps of dead runs and keeps those of live ones", async (t) => {
  const node = await testNode(t);
  await node.addImage("sysext", "a.raw");
  const sys = LAYOUTS.sysext;
  const conf = LAYOUTS.confext;
  const leftovers = [
    `${sys.store}/.extctl-dl-${DEAD}-0a0b0c0d-big.raw`,
    `${sys.store}/active/.extctl-link-${DEAD}-01020304-a.raw`,
    `${sys.runtime}/.extctl-link-${DEAD}-01020304-a.raw`,
    `${conf.store}/common/.extctl-link-${DEAD}-01020304-c.raw`,
  ];
  const live = `${sys.store}/.extctl-dl-${process.pid}-0a0b0c0d-mine.raw`;
  for (const p of [...leftovers, live]) {
    await mkdir(node.host(p.slice(0, p.lastIndexOf("/"))), { recursive: true });
    if (p.includes("-link-")) await symlink("/nowhere", node.host(p));
    else await writeFile(node.host(p), "partial");
  }
  await enable(node.ctx, { kind: "sysext", name: "a", profile: "passive" });
  for (const p of leftovers) assert.equal(await node.exists(p), false, p);
  assert.equal(await node.exists(live), true);
  assert.deepEqual((await readdir(node.host(`${sys.store}/passive`))).sort(), ["a.raw"]);
});
