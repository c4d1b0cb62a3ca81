// `extctl inspect --cat` of one 128 MiB file of real binaries (this machine's /usr/lib and
// /usr/bin, concatenated in name order) from a zstd squashfs (mksquashfs' defaults: 128 KiB
// blocks, level 15) against `unsquashfs -cat` on the same image; both write to /dev/null.
// Run: node --import tsx bench/cat.ts  (BENCH_RUNS runs).
import { execFileSync } from "node:child_process";
import { closeSync, openSync, lstatSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { benchDir, emitSkipped, extctl, has, sideBySide } from "./lib.js";

const NAME = "inspect --cat 128 MiB of binaries, zstd squashfs";
const PEER = "unsquashfs -cat";
const GOAL = 1.5;
const SIZE = 128 * 1024 * 1024;

/** Regular files under `dir`, sorted, recursively (symlinks skipped). */
function filesUnder(dir: string, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (st?.isDirectory()) filesUnder(file, out);
    else if (st?.isFile()) out.push(file);
  }
  return out;
}

async function main(): Promise<void> {
  if (!has("mksquashfs") || !has("unsquashfs")) {
    emitSkipped(NAME, PEER, GOAL, "needs mksquashfs and unsquashfs");
    return;
  }
  const dir = await benchDir();
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.cat"),
    "ID=_any\n",
  );
  const fd = openSync(path.join(tree, "usr/lib/binaries"), "w");
  let written = 0;
  for (const file of [...filesUnder("/usr/bin"), ...filesUnder("/usr/lib/x86_64-linux-gnu")]) {
    if (written >= SIZE) break;
    const bytes = readFileSync(file).subarray(0, SIZE - written);
    writeSync(fd, bytes);
    written += bytes.length;
  }
  closeSync(fd);
  const image = path.join(dir, "cat.raw");
  execFileSync("mksquashfs", [
    tree,
    image,
    "-noappend",
    "-all-root",
    "-comp",
    "zstd",
    "-quiet",
    "-no-progress",
  ]);
  const toNull = (argv: string[]) => ["sh", "-c", 'exec "$@" >/dev/null', "sh", ...argv];
  const result = await sideBySide({
    name: NAME,
    goal: GOAL,
    peerName: PEER,
    extctl: { argv: toNull(extctl("inspect", "--cat", "/usr/lib/binaries", image)) },
    peer: { argv: toNull(["unsquashfs", "-cat", image, "usr/lib/binaries"]) },
    note: `${written} bytes; zstd blocks decoded by ${process.versions.node} node:zlib where it has zstd`,
    extra: { bytes: written },
  });
  process.stderr.write(
    `extctl ${result.extctl_s}s vs ${PEER} ${result.peer_s}s: ratio ${result.ratio}\n`,
  );
}

await main();
