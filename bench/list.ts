// `extctl sysext list` with 1,000 installed images (half enabled, a quarter linked in /run) against
// `systemd-sysext list` over the same image files, and against `extctl sysext list` of an empty
// store (what is left is the per-image cost: with the store's summary cache, a stat per image).
// 10,000 images as well, to show how the cost grows. BENCH_LIST_COUNTS=1000,10000 to choose.
import { execFileSync } from "node:child_process";
import { link, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  benchDir,
  benchRoot,
  emitSkipped,
  extctl,
  has,
  measure,
  median,
  round,
  sideBySide,
} from "./lib.js";

const COUNTS = (process.env.BENCH_LIST_COUNTS ?? process.env.BENCH_LIST_IMAGES ?? "1000,10000")
  .split(",")
  .map(Number)
  .filter((n) => n > 0);
const PEER = "systemd-sysext list";
const GOAL_PEER = 1.5;
const GOAL_EMPTY = 1.3;
const CACHE = ".extctl-cache.json";

async function makeRoots(dir: string, image: string, count: number) {
  const ours = path.join(dir, `extctl-root-${count}`);
  const theirs = path.join(dir, `sysext-root-${count}`);
  for (const root of [ours, theirs]) await benchRoot(root);
  const store = path.join(ours, "var/lib/kairos/extensions");
  const active = path.join(store, "active");
  const runtime = path.join(ours, "run/extensions");
  const peerDir = path.join(theirs, "var/lib/extensions");
  for (const d of [active, runtime, peerDir]) await mkdir(d, { recursive: true });
  for (let i = 0; i < count; i++) {
    const name = `tool-${String(i).padStart(5, "0")}.sysext.raw`;
    await link(image, path.join(store, name));
    await link(image, path.join(peerDir, name));
    if (i % 2 === 0) {
      await symlink(`/var/lib/kairos/extensions/${name}`, path.join(active, name));
      if (i % 4 === 0) {
        await symlink(`/var/lib/kairos/extensions/active/${name}`, path.join(runtime, name));
      }
    }
  }
  return { ours, theirs, store };
}

if (!has("systemd-sysext") || !has("mksquashfs")) {
  for (const count of COUNTS)
    emitSkipped(
      `list with ${count} installed images`,
      PEER,
      GOAL_PEER,
      "systemd-sysext or mksquashfs missing",
    );
} else {
  const dir = await benchDir("extctl-bench-list-");
  // One real (tiny) squashfs sysext, linked under every name.
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
  // The same command on an empty store: what is left of extctl's time is start-up, not listing.
  const empty = await benchRoot(path.join(dir, "empty-root"));
  const runs = Number(process.env.BENCH_RUNS) || 15;

  for (const count of COUNTS) {
    const { ours, theirs, store } = await makeRoots(dir, image, count);
    const list = extctl("--root", ours, "sysext", "list");
    // list caches only images whose times are 2 s old (link() just changed their ctime).
    await new Promise((resolve) => setTimeout(resolve, 2100));
    // Without the cache (deleted before each run): every image opened, as before the cache.
    const cold: number[] = [];
    for (let i = 0; i < 3; i++) {
      await rm(path.join(store, CACHE), { force: true });
      cold.push((await measure({ argv: list })).seconds);
    }
    const coldS = median(cold);
    // The last cold run wrote the cache: the runs below find every image unchanged.
    const row = await sideBySide({
      name: `list with ${count} installed images (unchanged)`,
      goal: GOAL_EMPTY,
      peerName: "extctl sysext list, empty store",
      extctl: { argv: list },
      peer: { argv: extctl("--root", empty, "sysext", "list") },
      runs,
      note: `summary cache warm; per image (extctl_s - peer_s) / ${count}; extra.cold_s: no cache, every image opened`,
      extra: { cold_s: round(coldS, 4), images: count },
    });
    process.stderr.write(
      `${count} images: ${row.extctl_s}s cached, ${round(coldS, 4)}s cold, empty store ${row.peer_s}s; ` +
        `per image ${round(((row.extctl_s - row.peer_s) / count) * 1e6, 1)} us cached, ` +
        `${round(((coldS - row.peer_s) / count) * 1e6, 1)} us cold\n`,
    );
    if (count <= 1000) {
      await sideBySide({
        name: `list with ${count} installed images`,
        goal: GOAL_PEER,
        peerName: PEER,
        extctl: { argv: list },
        peer: { argv: ["systemd-sysext", `--root=${theirs}`, "list"] },
        runs,
        note: "extctl also reads the four profile dirs, /run/extensions and the merged state, and starts Node; summary cache warm",
      });
    }
    await rm(ours, { recursive: true, force: true });
    await rm(theirs, { recursive: true, force: true });
  }
}
