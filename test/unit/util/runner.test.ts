// The process runner: output and exit codes of real programs, a timeout that kills, and a
// program that cannot be started failing at once without keeping the process alive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { SpawnRunner } from "../../../src/util/runner.js";

test("captures stdout, stderr and the exit code", async () => {
  const r = await new SpawnRunner().run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual([r.stdout, r.stderr, r.exitCode], ["out\n", "err\n", 3]);
});

test("a timeout kills the program", async () => {
  const started = Date.now();
  const r = await new SpawnRunner().run("sleep", ["30"], { timeoutMs: 200 });
  assert.equal(r.signal, "SIGKILL");
  assert.ok(Date.now() - started < 5000);
});

test("a missing program rejects with ENOENT and leaves nothing that keeps Node running", () => {
  // In a child Node, so that a leaked timer or pipe shows as a process that does not exit.
  const script = `
    import { SpawnRunner } from ${JSON.stringify(new URL("../../../src/util/runner.ts", import.meta.url).href)};
    try { await new SpawnRunner().run("extctl-no-such-program", [], { timeoutMs: 600000 }); }
    catch (e) { console.log(e.code); }`;
  const started = Date.now();
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.stdout.trim(), "ENOENT");
  assert.equal(r.status, 0);
  assert.ok(Date.now() - started < 15_000, "the process exited without waiting for the timeout");
});
