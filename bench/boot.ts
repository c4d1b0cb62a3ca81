// `extctl boot` linking 50 signed images under the `signed` policy (signature and superblock
// checks, no full read) against 50 calls of `systemd-dissect --validate`, what immucore runs per
// image on a trusted boot. Run: node --import tsx bench/boot.ts  (BENCH_RUNS runs).
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { makeSigningCert } from "../test/helpers/keys.js";
import { benchDir, benchRoot, emitSkipped, extctl, sideBySide } from "./lib.js";

const NAME = "boot 50 signed images";
const GOAL = 0.1;
// What immucore runs per image on a trusted boot (systemd 253+).
const POLICY = "--image-policy=root=signed+absent:usr=signed+absent";
const COUNT = 50;

function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** systemd 253+ has --validate; 252 (Debian 12) does not, and --json=short dissects the same way. */
function dissectMode(): { args: string[]; note: string } {
  try {
    execFileSync("systemd-dissect", ["--validate", "/dev/null"], { stdio: "pipe" });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? "");
    if (/unrecognized option/.test(stderr))
      return {
        args: ["--json=short"],
        note: "systemd-dissect 252 has no --validate; --json=short dissects and reads the release file",
      };
  }
  return {
    args: ["--validate", POLICY],
    note: `systemd-dissect --validate ${POLICY} per image (its signature checked against /etc/verity.d)`,
  };
}

async function main(): Promise<void> {
  for (const peer of ["systemd-dissect", "mksquashfs", "openssl"]) {
    if (!has(peer)) return emitSkipped(NAME, "systemd-dissect x50", GOAL, `${peer} is missing`);
  }
  if (process.getuid?.() !== 0)
    return emitSkipped(NAME, "systemd-dissect x50", GOAL, "needs root (loop devices)");
  const dir = await benchDir("extctl-bench-boot-");
  const { key, cert } = makeSigningCert(dir, "fleet", {
    type: "ec",
    subject: "/CN=bench-fleet",
    days: 2,
  });
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/share/bench"), { recursive: true });
  // Some content, so the images are not trivially small.
  for (let i = 0; i < 64; i++)
    await writeFile(path.join(tree, "usr/share/bench", `f${i}`), Buffer.alloc(16 * 1024, i));
  execFileSync(
    process.execPath,
    [
      ...extctl(
        "build",
        "sysext",
        "bench",
        tree,
        "-o",
        dir,
        "--format",
        "squashfs",
        "--verity-block-size",
        "512",
        "--private-key",
        key,
        "--certificate",
        cert,
      ).slice(1),
    ],
    { stdio: "ignore" },
  );
  const built = path.join(dir, "bench.sysext.raw");

  const root = await benchRoot(path.join(dir, "root"), [
    "var/lib/kairos/extensions/active",
    "etc/verity.d",
  ]);
  const store = path.join(root, "var/lib/kairos/extensions");
  await copyFile(cert, path.join(root, "etc/verity.d/fleet.crt"));
  const images: string[] = [];
  for (let i = 0; i < COUNT; i++) {
    const name = `ext${String(i).padStart(2, "0")}.raw`;
    await copyFile(built, path.join(store, name));
    await symlink(`../${name}`, path.join(store, "active", name));
    images.push(path.join(store, name));
  }
  await rm(built);
  await rename(tree, path.join(dir, "tree-done"));
  const cmdline = path.join(dir, "cmdline");
  await writeFile(cmdline, "root=LABEL=COS_ACTIVE ro\n");

  const bootArgv = extctl(
    "--root",
    root,
    "-q",
    "boot",
    "--cmdline",
    cmdline,
    "--policy",
    "signed",
    "--no-refresh",
    "--json",
  );
  // BENCH_PROFILE_DIR=DIR: one extra run under --cpu-prof, to see where the time goes.
  if (process.env.BENCH_PROFILE_DIR) {
    await rm(path.join(root, "run"), { recursive: true, force: true });
    execFileSync(
      process.execPath,
      ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`, ...bootArgv.slice(1)],
      { stdio: "ignore" },
    );
  }
  const mode = dissectMode();
  // For the signed policy systemd checks the signature against /etc/verity.d of the real root;
  // only in a lane (an overlay root that vanishes with the run) does the bench put its CA there.
  let planted: string | undefined;
  if (mode.args.includes(POLICY)) {
    if (!process.env.EXTCTL_LANE)
      return emitSkipped(
        NAME,
        "systemd-dissect x50",
        GOAL,
        "run in a lane (bash scripts/lanes.sh run 257 ...): the peer needs the CA in /etc/verity.d",
      );
    await mkdir("/etc/verity.d", { recursive: true });
    planted = "/etc/verity.d/extctl-bench-fleet.crt";
    if (!existsSync(planted)) await copyFile(cert, planted);
  }
  const script = `for f in "$@"; do systemd-dissect ${mode.args.join(" ")} "$f" >/dev/null || exit 1; done`;
  await sideBySide({
    name: NAME,
    goal: GOAL,
    peerName: `systemd-dissect ${mode.args.join(" ")} x${COUNT}`,
    // The machine is shared: the 1-minute load at the start says how much to trust the times.
    note: `extctl boot --policy signed --no-refresh (links all ${COUNT}); ${mode.note}; load ${loadavg()[0]!.toFixed(2)} at the start`,
    extctl: {
      argv: bootArgv,
      // Each run starts from an empty /run, as at boot.
      before: () => rm(path.join(root, "run"), { recursive: true, force: true }),
    },
    peer: { argv: ["sh", "-c", script, "sh", ...images] },
  });
  if (planted) await rm(planted, { force: true });
}

await main();
