// `extctl inspect --json` of a 1 GiB squashfs extension image with 3,000 files against
// `systemd-dissect --json=short` on the same file (both read only metadata), and against
// `node -e 0` (inspect reads only what it prints: no tree walk without --tree or --files).
// Run: node --import tsx bench/inspect.ts  (BENCH_RUNS runs; needs root for systemd-dissect).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, writeFile } from "node:fs/promises";
import path from "node:path";
import { benchDir, emitSkipped, extctl, has, measure, sideBySide } from "./lib.js";

const NAME = "inspect 1 GiB image";
const PEER = "systemd-dissect --json=short";
const GOAL = 1.0;

async function makeTree(tree: string): Promise<void> {
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.big"),
    "ID=_any\n",
  );
  // 1 GiB of incompressible data in 16 files, written in 4 MiB pieces to keep memory flat.
  await mkdir(path.join(tree, "usr/share/big"), { recursive: true });
  const piece = randomBytes(4 * 1024 * 1024);
  for (let f = 0; f < 16; f++) {
    const fh = await open(path.join(tree, `usr/share/big/blob${f}`), "w");
    for (let i = 0; i < 16; i++) {
      piece.writeUInt32LE(f * 16 + i, 0);
      await fh.write(piece);
    }
    await fh.close();
  }
  // And the metadata a real image has: a few thousand small files in nested directories.
  for (let d = 0; d < 50; d++) {
    const dir = path.join(tree, `usr/lib/pkg${d}/sub`);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < 60; i++)
      await writeFile(path.join(dir, `file${i}.so`), `pkg ${d} file ${i}\n`);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || !has("systemd-dissect") || !has("mksquashfs")) {
    emitSkipped(NAME, PEER, GOAL, "needs root, systemd-dissect and mksquashfs");
    return;
  }
  // BENCH_INSPECT_IMAGE reuses an image made earlier (making 1 GiB takes a while).
  let image = process.env.BENCH_INSPECT_IMAGE ?? "";
  if (!image) {
    const dir = await benchDir();
    const tree = path.join(dir, "tree");
    await makeTree(tree);
    image = path.join(dir, "big.raw");
    // Data uncompressed (-noD) so building the fixture stays quick; metadata compressed as usual.
    execFileSync("mksquashfs", [
      tree,
      image,
      "-noappend",
      "-all-root",
      "-noD",
      "-quiet",
      "-no-progress",
    ]);
    execFileSync("rm", ["-rf", tree]);
  }

  const once = await measure({ argv: extctl("inspect", "--json", image) });
  const inspected = JSON.parse(once.stdout) as { size: number; bytesRead: number };
  const walked = JSON.parse(
    (await measure({ argv: extctl("inspect", "--json", "--tree", image) })).stdout,
  ) as {
    bytesRead: number;
    tree: { entries: number };
  };
  process.stderr.write(
    `image ${inspected.size} bytes, ${walked.tree.entries} entries; extctl read ${inspected.bytesRead} bytes (${((100 * inspected.bytesRead) / inspected.size).toFixed(3)}%), ${walked.bytesRead} with --tree\n`,
  );
  await sideBySide({
    name: "inspect 1 GiB image, 3,000 files (start-up)",
    goal: 1.6,
    peerName: "node -e 0",
    extctl: { argv: extctl("inspect", "--json", image) },
    peer: { argv: [process.execPath, "-e", "0"] },
    runs: Number(process.env.BENCH_RUNS) || 9,
    note: "no --tree or --files: superblocks, release file, verity and signature only",
    extra: { entries: walked.tree.entries, extctl_bytes_read: inspected.bytesRead },
  });
  const result = await sideBySide({
    name: NAME,
    goal: GOAL,
    peerName: PEER,
    extctl: { argv: extctl("inspect", "--json", image) },
    peer: { argv: ["systemd-dissect", "--json=short", image] },
    note: "extctl reads only what it prints (no tree walk without --tree); systemd-dissect loop-mounts the image to read the release file",
    extra: {
      image_bytes: inspected.size,
      extctl_bytes_read: inspected.bytesRead,
      entries: walked.tree.entries,
    },
  });
  process.stderr.write(
    `extctl ${result.extctl_s}s vs ${PEER} ${result.peer_s}s: ratio ${result.ratio} (goal <= ${GOAL}); extctl read ${inspected.bytesRead} bytes\n`,
  );
}

await main();
