// Simple commands start fast because they never load the heavy packages (pkijs, undici, tar-stream,
// yaml, cli-progress, fzstd...): every module the real CLI loads is recorded by an import hook.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { heavyPackagesIn, loadedModules } from "../../../bench/lib.js";

async function scratchRoot(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), "extctl-lazy-"));
}

const SIMPLE: readonly (readonly string[])[] = [
  ["--version"],
  ["--help"],
  ["sysext", "--help"],
  ["sysext", "list"],
  ["sysext", "list", "--json"],
  ["confext", "list", "--active"],
  ["status"],
  ["status", "--json"],
  ["sysext", "status"],
];

for (const args of SIMPLE) {
  test(`extctl ${args.join(" ")} loads no heavy package`, async (t) => {
    const root = await scratchRoot();
    t.after(() => rm(root, { recursive: true, force: true }));
    const withRoot =
      args[0]?.startsWith("--") && args.length === 1 ? args : ["--root", root, ...args];
    const { modules, code, stderr } = await loadedModules(withRoot);
    assert.equal(code, 0, stderr);
    assert.ok(
      modules.some((m) => m.endsWith("/bin/extctl.cjs")),
      "the load trace recorded the entry point",
    );
    assert.deepEqual(heavyPackagesIn(modules), []);
  });
}

test("the load trace sees a heavy package when one is loaded (an oci install loads undici)", async (t) => {
  const root = await scratchRoot();
  t.after(() => rm(root, { recursive: true, force: true }));
  // Port 1 on 127.0.0.1 refuses at once: undici is loaded, nothing leaves the machine.
  const { modules, code } = await loadedModules([
    "--root",
    root,
    "sysext",
    "install",
    "oci://127.0.0.1:1/tool:1",
    "--insecure-registry",
    "127.0.0.1:1",
  ]);
  assert.equal(code, 75, "a registry that refuses the connection is EX_TEMPFAIL");
  assert.ok(heavyPackagesIn(modules).includes("undici"));
});
