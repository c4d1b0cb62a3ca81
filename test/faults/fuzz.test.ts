// Hostile inputs: a bounded mutation fuzzer (test/faults/fuzz-worker.ts) over every parser present
// in src/, in a child process with a memory cap and a deadline: a crash, hang or blow-up fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { faultTrials, recordFaults, runProcess } from "./lib.js";

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), "fuzz-worker.ts");

interface TargetResult {
  name: string;
  present: boolean;
  seeds: number;
  inputs: number;
  rejected: number;
  crashes: string[];
  maxRssMib: number;
}

test("parsers reject mutated inputs with ExtctlError only, in bounded time and memory", async (t) => {
  // 10 trials (CI) give each parser 1.5 s; 100 (scripts/faults.sh) give it 15 s.
  const msPerTarget = faultTrials() * 150;
  const r = await runProcess(
    [process.execPath, "--max-old-space-size=512", "--import", "tsx", WORKER],
    { env: { FUZZ_MS_PER_TARGET: String(msPerTarget) }, timeoutMs: 20 * msPerTarget + 60_000 },
  );
  assert.equal(r.hung, false, "the fuzzer hung: a parser loops forever on some input");
  assert.equal(r.code, 0, `the fuzzer died (out of memory?): ${r.stderr.slice(-3000)}`);
  const line = r.stdout.split("\n").find((l) => l.startsWith("FUZZ "));
  assert.ok(line, r.stdout + r.stderr);
  const results = JSON.parse(line.slice(5)) as TargetResult[];
  for (const res of results) {
    t.diagnostic(
      res.present
        ? `${res.name}: ${res.inputs} inputs (${res.seeds} seeds), ${res.rejected} rejected, ${res.crashes.length} crashes, max RSS ${Math.round(res.maxRssMib)} MiB`
        : `${res.name}: module not present yet, skipped`,
    );
  }
  const present = results.filter((x) => x.present);
  const inputs = present.reduce((n, x) => n + x.inputs, 0);
  const crashed = present.filter((x) => x.crashes.length > 0);
  await recordFaults({
    name: `fuzz: ${present.length} parsers (${present.map((x) => x.name).join(", ")})`,
    kind: "fuzz",
    trials: present.length,
    survived: present.length - crashed.length,
    inputs,
    lost: 0,
  });
  assert.deepEqual(
    crashed.map((x) => `${x.name}: ${x.crashes.join("\n  ")}`),
    [],
    "non-ExtctlError exceptions",
  );
  for (const res of present)
    assert.ok(res.maxRssMib < 512, `${res.name} used ${res.maxRssMib} MiB`);
});
