// The NodeOp recipe's command (scripts/nodeop-upgrade.sh): extctl's exit codes mapped for a
// rollout. extctl is a stub here (the exit codes are what is tested; upgrade's own codes are
// tested end to end in test/e2e/fleet.test.ts and lifecycle.test.ts).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "../../helpers/tmp.js";

const SCRIPT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../scripts/nodeop-upgrade.sh",
);

test("nodeop-upgrade: 0 and 3 complete, 75 is try later, 1 fails the Job; every kind runs", async (t) => {
  const dir = await tempDir(t);
  const stub = path.join(dir, "extctl");
  const log = path.join(dir, "calls");
  // Exits with the code named for its kind in the environment, and logs its arguments.
  await writeFile(stub, `#!/bin/sh\necho "$*" >> "${log}"\neval "exit \\$RC_$1"\n`);
  await chmod(stub, 0o755);
  const run = (sysext: number, confext: number) => {
    const r = spawnSync("sh", [SCRIPT], {
      env: {
        PATH: process.env.PATH,
        EXTCTL: stub,
        NODEOP_RUN: "env",
        EXTCTL_ARGS: "--timeout 30",
        RC_sysext: String(sysext),
        RC_confext: String(confext),
      },
      encoding: "utf8",
    });
    return { code: r.status, stderr: r.stderr };
  };
  assert.equal(run(0, 3).code, 0);
  assert.equal(run(3, 3).code, 0);
  const later = run(75, 0);
  assert.equal(later.code, 0, later.stderr);
  assert.match(
    later.stderr,
    /sysext: a catalog or registry could not be reached; the next run tries again/,
  );
  const failed = run(1, 0);
  assert.equal(failed.code, 1);
  assert.match(
    failed.stderr,
    /sysext: upgrade failed \(exit 1; a refused version or a failed health check\)/,
  );
  assert.match(failed.stderr, /confext: upgraded/, "the other kind still runs");
  assert.equal(run(0, 2).code, 1, "a usage error is a failure too");
  const calls = (await readFile(log, "utf8")).trim().split("\n");
  assert.equal(calls[0], "sysext upgrade --all --now --json --timeout 30");
  assert.equal(calls[1], "confext upgrade --all --now --json --timeout 30");
});

test("nodeop-upgrade: HEALTH_CHECK reaches upgrade as one argument, spaces and quotes intact, never through a shell", async (t) => {
  const dir = await tempDir(t);
  const stub = path.join(dir, "extctl");
  const log = path.join(dir, "args");
  // One argument a line, so word splitting would show.
  await writeFile(
    stub,
    `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> "${log}"; done\nexit 3\n`,
  );
  await chmod(stub, 0o755);
  const check = `sh -c 'curl -fsS http://127.0.0.1:8080/healthz || exit 4' $(touch ${dir}/pwned)`;
  const r = spawnSync("sh", [SCRIPT], {
    env: {
      PATH: process.env.PATH,
      EXTCTL: stub,
      NODEOP_RUN: "env",
      KINDS: "sysext",
      HEALTH_CHECK: check,
      TRIES: "2",
    },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual((await readFile(log, "utf8")).split("\n").filter(Boolean), [
    "sysext",
    "upgrade",
    "--all",
    "--now",
    "--json",
    "--health-check",
    check,
    "--tries",
    "2",
  ]);
  await assert.rejects(readFile(path.join(dir, "pwned")), "the script never evaluated the check");
});
