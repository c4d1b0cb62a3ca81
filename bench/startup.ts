// Start-up cost: extctl --version / --help / list / status against `node -e 0` of the same
// runtime (goal <= 1.3x for --version, list and status, 1.5x for --help), list and status also
// against `systemd-sysext list` / `status` on the same root (the peer a user compares with; no
// goal: a C program that starts in a few ms),
// and whether those simple commands load any heavy package (they must not); the same commands
// from the one-file dist/extctl.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { packagePath } from "../scripts/package-sea.js";
import {
  REPO,
  benchDir,
  benchRoot,
  emitSkipped,
  extctl,
  has,
  heavyPackagesIn,
  loadedModules,
  sideBySide,
} from "./lib.js";

const GOAL = 1.3;
const root = await benchRoot(await benchDir("extctl-bench-startup-"), [
  "var/lib/kairos/extensions/active",
]);
const store = path.join(root, "var/lib/kairos/extensions");
for (let i = 0; i < 5; i++) await writeFile(path.join(store, `tool${i}.sysext.raw`), "x");

const rows: { label: string; args: string[]; goal?: number; systemd?: string[] }[] = [
  { label: "--version", args: ["--version"] },
  { label: "--help", args: ["--help"], goal: 1.5 },
  {
    label: "sysext list (5 images)",
    args: ["--root", root, "sysext", "list"],
    systemd: ["systemd-sysext", `--root=${root}`, "list"],
  },
  {
    label: "status",
    args: ["--root", root, "status"],
    systemd: ["systemd-sysext", `--root=${root}`, "status"],
  },
];
/** Rows against systemd-sysext: reported, no goal to meet (0 would be "never"). */
const SYSTEMD_GOAL = 100;

for (const row of rows) {
  const heavy = heavyPackagesIn((await loadedModules(row.args)).modules);
  await sideBySide({
    name: `start-up: extctl ${row.label}`,
    goal: row.goal ?? GOAL,
    peerName: "node -e 0",
    extctl: { argv: extctl(...row.args) },
    peer: { argv: [process.execPath, "-e", "0"] },
    runs: Number(process.env.BENCH_RUNS) || 15,
    warmup: 2,
    ...(heavy.length === 0 ? {} : { note: `loads heavy packages: ${heavy.join(", ")}` }),
    extra: { heavy_packages_loaded: heavy.length },
  });
}

// The one-file build (npm run package): the same commands from dist/extctl, which carries its
// own node, against the same `node -e 0`.
const packaged = packagePath();
if (!existsSync(packaged)) {
  execFileSync(process.execPath, ["--import", "tsx", path.join(REPO, "scripts/package-sea.ts")], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}
for (const row of rows) {
  await sideBySide({
    name: `start-up: dist/extctl ${row.label}`,
    goal: row.goal ?? GOAL,
    peerName: "node -e 0",
    extctl: { argv: [packaged, ...row.args] },
    peer: { argv: [process.execPath, "-e", "0"] },
    runs: Number(process.env.BENCH_RUNS) || 15,
    warmup: 2,
    note: `one file of ${((await stat(packaged)).size / 2 ** 20).toFixed(1)} MiB, no Node.js needed`,
  });
}

// The same list and status against systemd-sysext's own, on the same root.
for (const row of rows) {
  if (!row.systemd) continue;
  const name = `start-up: dist/extctl ${row.label} vs systemd-sysext`;
  const peer = row.systemd.slice(0, 1).concat(row.systemd.slice(2)).join(" ");
  if (!has("systemd-sysext")) {
    emitSkipped(name, peer, SYSTEMD_GOAL, "needs systemd-sysext");
    continue;
  }
  await sideBySide({
    name,
    goal: SYSTEMD_GOAL,
    peerName: peer,
    extctl: { argv: [packaged, ...row.args] },
    peer: { argv: row.systemd, allowFailure: true },
    runs: Number(process.env.BENCH_RUNS) || 15,
    warmup: 2,
    note: "systemd-sysext is C; no goal, the ratio says what Node's start-up costs against it",
  });
}
