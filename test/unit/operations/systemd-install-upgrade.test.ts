// systemd install --auto-upgrade at the library level: the schedule is checked by systemd-analyze
// when it runs and by its syntax when it is not installed; a bad one writes nothing; uninstall
// removes the timer, its link and the service.
import assert from "node:assert/strict";
import { readFile, readdir, readlink } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { systemdInstall } from "../../../src/operations/systemd-install.js";
import { createContext, type Context } from "../../../src/util/context.js";
import type { ExtctlError } from "../../../src/util/errors.js";
import { MemoryLogger } from "../../../src/util/log.js";
import { noProgress } from "../../../src/util/progress.js";
import type { ProcessRunner, RunResult } from "../../../src/util/runner.js";
import { tempRoot } from "../../helpers/tmp.js";

/** A runner with no systemd-analyze (spawn's ENOENT), or one that refuses `refuse`. */
function analyzer(mode: "missing" | { refuse: string }): ProcessRunner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    async run(command, args): Promise<RunResult> {
      calls.push([command, ...args]);
      if (mode === "missing")
        throw Object.assign(new Error(`spawn ${command} ENOENT`), { code: "ENOENT" });
      const spec = args.at(-1) ?? "";
      const bad = spec === mode.refuse;
      return {
        command: [command, ...args],
        exitCode: bad ? 1 : 0,
        signal: null,
        stdout: bad ? "" : `  Original form: ${spec}\n`,
        stderr: bad ? `Failed to parse calendar specification '${spec}': Invalid argument\n` : "",
      };
    },
  };
}

async function node(t: TestContext, runner: ProcessRunner): Promise<{ dir: string; ctx: Context }> {
  const dir = await tempRoot(t);
  const ctx = createContext({
    root: dir,
    runner,
    log: new MemoryLogger(),
    progress: () => noProgress,
    env: {},
  });
  return { dir, ctx };
}

const BASE = { systemdVersion: 255, policy: "verity", extctlPath: "/usr/bin/extctl" } as const;
const TIMER = "etc/systemd/system/extctl-upgrade.timer";

test("without systemd-analyze the schedule is checked by its syntax, and the units are written", async (t) => {
  const runner = analyzer("missing");
  const { dir, ctx } = await node(t, runner);
  const result = await systemdInstall(ctx, { ...BASE, autoUpgrade: true, onCalendar: "Sat 04:00" });
  assert.deepEqual(result.autoUpgrade, { onCalendar: "Sat 04:00" });
  assert.deepEqual(runner.calls[0], ["systemd-analyze", "calendar", "--", "Sat 04:00"]);
  assert.match(await readFile(path.join(dir, TIMER), "utf8"), /^OnCalendar=Sat 04:00$/m);
  assert.equal(
    await readlink(path.join(dir, "etc/systemd/system/timers.target.wants/extctl-upgrade.timer")),
    "/etc/systemd/system/extctl-upgrade.timer",
  );
  await assert.rejects(
    systemdInstall(ctx, { ...BASE, autoUpgrade: true, onCalendar: "whenever" }),
    (e: ExtctlError) => e.code === "usage" && e.exitCode === 2,
  );
  assert.match(await readFile(path.join(dir, TIMER), "utf8"), /^OnCalendar=Sat 04:00$/m);

  const removed = await systemdInstall(ctx, { uninstall: true });
  for (const p of [
    "/etc/systemd/system/extctl-upgrade.service",
    "/etc/systemd/system/extctl-upgrade.timer",
    "/etc/systemd/system/timers.target.wants/extctl-upgrade.timer",
  ])
    assert.ok(removed.changed.includes(p), p);
  assert.deepEqual(await readdir(path.join(dir, "etc/systemd/system")), []);
});

test("systemd-analyze's refusal is a usage error with its reason, and nothing is written", async (t) => {
  const { dir, ctx } = await node(t, analyzer({ refuse: "Feb 30 25:00" }));
  await assert.rejects(
    systemdInstall(ctx, { ...BASE, autoUpgrade: true, onCalendar: "Feb 30 25:00" }),
    (e: ExtctlError) =>
      e.code === "usage" &&
      e.exitCode === 2 &&
      /Failed to parse calendar specification/.test(e.message),
  );
  assert.deepEqual(await readdir(path.join(dir, "etc")), []);
});

test("--on-calendar needs --auto-upgrade, and --uninstall takes neither", async (t) => {
  const runner = analyzer({ refuse: "" });
  const { ctx } = await node(t, runner);
  await assert.rejects(systemdInstall(ctx, { ...BASE, onCalendar: "daily" }), {
    code: "usage",
    message: /--on-calendar is the upgrade timer's schedule/,
  });
  await assert.rejects(systemdInstall(ctx, { uninstall: true, autoUpgrade: true }), {
    code: "usage",
  });
  assert.deepEqual(runner.calls, []);
});
