// extctl's cost at boot on a real kernel: extctl-boot.service (the one file linking six images
// after checking each signature and superblock) against systemd-sysext.service (merging them
// through dm-verity) in the same boot of the VM lane (test/vm/vm.test.ts writes their
// ExecMain timestamps to bench/results/vm-boot-LANE.json). Goal <= 0.5x. This reads the lane's
// last result rather than booting (a boot takes minutes under emulation): run the VM lane first
// (EXTCTL_LANES=vm bash scripts/test.sh e2e).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { REPO, emitBench, emitSkipped, round } from "./lib.js";

const GOAL = 0.5;

interface VmBootResult {
  lane: string;
  kernel: string;
  images: number;
  extctlBootUs: number;
  sysextUs: number;
  ratio: number;
  at: string;
}

for (const lane of ["257", "262"]) {
  const name = `boot on a real kernel, systemd ${lane} (6 images, TCG)`;
  const file = path.join(REPO, "bench/results", `vm-boot-${lane}.json`);
  if (!existsSync(file)) {
    emitSkipped(
      name,
      "systemd-sysext.service",
      GOAL,
      `no VM lane result (${file}): run EXTCTL_LANES=vm bash scripts/test.sh e2e`,
    );
    continue;
  }
  const r = JSON.parse(readFileSync(file, "utf8")) as VmBootResult;
  emitBench({
    name,
    extctl_s: round(r.extctlBootUs / 1e6, 3),
    peer: "systemd-sysext.service",
    peer_s: round(r.sysextUs / 1e6, 3),
    ratio: round(r.extctlBootUs / r.sysextUs, 2),
    goal: GOAL,
    peak_rss_mib: 0,
    runs: 1,
    note: `one boot of the VM lane at ${r.at}, kernel ${r.kernel}, ${r.images} images`,
  });
  process.stderr.write(
    `${name}: extctl-boot.service ${(r.extctlBootUs / 1000).toFixed(0)} ms, systemd-sysext.service ${(r.sysextUs / 1000).toFixed(0)} ms: ${(r.extctlBootUs / r.sysextUs).toFixed(2)}x (goal ${GOAL}x)\n`,
  );
}
