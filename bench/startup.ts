// Start-up cost: extctl --version / --help / list / status against `node -e 0` (goal <= 1.5x),
// and whether those simple commands load any heavy package (they must not).
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { benchDir, extctl, heavyPackagesIn, loadedModules, sideBySide } from "./lib.js";

const GOAL = 1.5;
const root = await benchDir("extctl-bench-startup-");
await mkdir(path.join(root, "usr/lib"), { recursive: true });
await writeFile(path.join(root, "usr/lib/os-release"), "ID=debian\nVERSION_ID=12\n");
const store = path.join(root, "var/lib/kairos/extensions");
await mkdir(path.join(store, "active"), { recursive: true });
for (let i = 0; i < 5; i++) await writeFile(path.join(store, `tool${i}.sysext.raw`), "x");

const rows: { label: string; args: string[] }[] = [
  { label: "--version", args: ["--version"] },
  { label: "--help", args: ["--help"] },
  { label: "sysext list (5 images)", args: ["--root", root, "sysext", "list"] },
  { label: "status", args: ["--root", root, "status"] },
];

for (const row of rows) {
  const heavy = heavyPackagesIn((await loadedModules(row.args)).modules);
  await sideBySide({
    name: `start-up: extctl ${row.label}`,
    goal: GOAL,
    peerName: "node -e 0",
    extctl: { argv: extctl(...row.args) },
    peer: { argv: [process.execPath, "-e", "0"] },
    runs: Number(process.env.BENCH_RUNS) || 15,
    warmup: 2,
    note: heavy.length === 0 ? undefined : `loads heavy packages: ${heavy.join(", ")}`,
    extra: { heavy_packages_loaded: heavy.length },
  });
}
