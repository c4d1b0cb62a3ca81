// bin/extctl.cjs in a checkout that was never built says what to do, not Node's stack trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

test("bin/extctl.cjs before npm run build exits 1 with one sentence and the command to run", async (t) => {
  const checkout = await mkdtemp(path.join(os.tmpdir(), "extctl-unbuilt-"));
  t.after(() => rm(checkout, { recursive: true, force: true }));
  await mkdir(path.join(checkout, "bin"));
  await copyFile(path.join(REPO, "bin/extctl.cjs"), path.join(checkout, "bin/extctl.cjs"));
  await copyFile(path.join(REPO, "package.json"), path.join(checkout, "package.json"));
  const r = spawnSync(process.execPath, [path.join(checkout, "bin/extctl.cjs"), "status"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^extctl: this checkout is not built yet/);
  assert.match(r.stderr, /npm ci && npm run build/);
  assert.doesNotMatch(r.stderr, /ERR_MODULE_NOT_FOUND|at .*\(node:/);
});
