// `extctl sysext list` with 1,000 installed images (half enabled, a quarter linked in /run) against
// `systemd-sysext list` over the same 1,000 image files.
import { execFileSync } from "node:child_process";
import { link, mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { benchDir, emitSkipped, extctl, measure, median, round, sideBySide } from "./lib.js";

const COUNT = Number(process.env.BENCH_LIST_IMAGES) || 1000;
const NAME = `list with ${COUNT} installed images`;
const PEER = "systemd-sysext list";
const GOAL = 1.5;

function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

if (!has("systemd-sysext") || !has("mksquashfs")) {
  emitSkipped(NAME, PEER, GOAL, "systemd-sysext or mksquashfs missing");
} else {
  const dir = await benchDir("extctl-bench-list-");
  // One real (tiny) squashfs sysext, copied under 1,000 names.
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.tool"),
    "ID=_any\n",
  );
  const image = path.join(dir, "tool.raw");
  execFileSync("mksquashfs", [tree, image, "-noappend", "-all-root", "-quiet"], {
    stdio: "ignore",
  });

  const ours = path.join(dir, "extctl-root");
  const theirs = path.join(dir, "sysext-root");
  for (const root of [ours, theirs]) {
    await mkdir(path.join(root, "usr/lib"), { recursive: true });
    await writeFile(path.join(root, "usr/lib/os-release"), "ID=debian\nVERSION_ID=12\n");
  }
  const store = path.join(ours, "var/lib/kairos/extensions");
  const active = path.join(store, "active");
  const runtime = path.join(ours, "run/extensions");
  const peerDir = path.join(theirs, "var/lib/extensions");
  for (const d of [active, runtime, peerDir]) await mkdir(d, { recursive: true });
  for (let i = 0; i < COUNT; i++) {
    const name = `tool-${String(i).padStart(4, "0")}.sysext.raw`;
    await link(image, path.join(store, name));
    await link(image, path.join(peerDir, name));
    if (i % 2 === 0) {
      await symlink(`/var/lib/kairos/extensions/${name}`, path.join(active, name));
      if (i % 4 === 0) {
        await symlink(`/var/lib/kairos/extensions/active/${name}`, path.join(runtime, name));
      }
    }
  }
  // The same command on an empty store: what is left of extctl's time is start-up, not listing.
  const empty = path.join(dir, "empty-root");
  await mkdir(empty, { recursive: true });
  const emptyRuns: number[] = [];
  for (let i = 0; i < 5; i++) {
    emptyRuns.push((await measure({ argv: extctl("--root", empty, "sysext", "list") })).seconds);
  }
  await sideBySide({
    name: NAME,
    goal: GOAL,
    peerName: PEER,
    extctl: { argv: extctl("--root", ours, "sysext", "list") },
    peer: { argv: ["systemd-sysext", `--root=${theirs}`, "list"] },
    runs: Number(process.env.BENCH_RUNS) || 7,
    extra: { extctl_empty_store_s: round(median(emptyRuns), 4) },
    note: "extctl also reads the four profile dirs, /run/extensions and the merged state; both include process start-up (extra.extctl_empty_store_s: extctl list of an empty store, i.e. Node start-up)",
  });
}
