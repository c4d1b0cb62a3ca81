// Decompression speed: extctl's decoders (node:zlib's zstd where the runtime has it, and fzstd, the
// fallback on an older Node, each in a row of its own; its own LZMA/xz) against native ones
// (zstd-napi, @napi-rs/lzma, kept as dev dependencies for this), on the same blocks, in one process:
// - squashfs zstd and xz blocks: 128 KiB blocks as mksquashfs writes them (zstd level 15, xz -6
//   by the real xz);
// - a zstd layer: one 48 MiB stream through the Transform an OCI pull uses.
// ratio = extctl now / native before (lower is better). The data is the start of this node
// binary (code and strings: neither text nor noise), so every run compresses the same bytes.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompressorFor } from "../src/domain/image/decompress/index.js";
import {
  createZstdDecompressStream,
  zstdDecoder,
  zstdReady,
} from "../src/domain/image/decompress/zstd.js";
import { benchRuns, emitBench, median } from "./lib.js";

const BLOCK = 128 * 1024;
const BLOCK_DATA = 24 * 1024 * 1024;
const LAYER_DATA = 48 * 1024 * 1024;
const XZ_DATA = 8 * 1024 * 1024;
/** zstd through node:zlib is libzstd too: within 1.5x of the addon (issue 26). */
const ZSTD_GOAL = 1.5;
/** The pure-JavaScript decoders (fzstd, extctl's xz): the goal of issue 17. */
const GOAL = 4;

const zstd = await import("zstd-napi");
const { xz } = await import("@napi-rs/lzma");
const data = readFileSync(process.execPath).subarray(0, LAYER_DATA);

function blocksOf(size: number): Buffer[] {
  const blocks: Buffer[] = [];
  for (let at = 0; at < size; at += BLOCK) blocks.push(data.subarray(at, at + BLOCK));
  return blocks;
}

/** Wall and CPU seconds (user + system, all of this process's threads: node:zlib's streams
 * decode on the thread pool) of one run. */
async function time(fn: () => Promise<void>): Promise<{ wall: number; cpu: number }> {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(cpu);
  return {
    wall: Number(process.hrtime.bigint() - start) / 1e9,
    cpu: (used.user + used.system) / 1e6,
  };
}

async function row(
  name: string,
  peer: string,
  mib: number,
  after: () => Promise<void>,
  before: () => Promise<void>,
  goal = GOAL,
): Promise<void> {
  const runs = benchRuns(5);
  await after();
  await before();
  const afterS: { wall: number; cpu: number }[] = [];
  const beforeS: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < runs; i++) {
    afterS.push(await time(after));
    beforeS.push(await time(before));
  }
  const a = median(afterS.map((t) => t.wall));
  const b = median(beforeS.map((t) => t.wall));
  // CPU time beside wall time: on a machine others share, wall time measures them too.
  const aCpu = median(afterS.map((t) => t.cpu));
  const bCpu = median(beforeS.map((t) => t.cpu));
  emitBench({
    name,
    extctl_s: Number(a.toFixed(4)),
    peer,
    peer_s: Number(b.toFixed(4)),
    ratio: Number((a / b).toFixed(3)),
    goal,
    peak_rss_mib: Number((process.memoryUsage().rss / 2 ** 20).toFixed(1)),
    runs,
    note: `${mib} MiB out; extctl ${(mib / a).toFixed(0)} MiB/s, native ${(mib / b).toFixed(0)} MiB/s; one process, RSS is the whole bench's`,
    extra: {
      extctl_cpu_s: Number(aCpu.toFixed(4)),
      peer_cpu_s: Number(bCpu.toFixed(4)),
      cpu_ratio: Number((aCpu / bCpu).toFixed(3)),
      extctl_mib_s: Number((mib / a).toFixed(1)),
      native_mib_s: Number((mib / b).toFixed(1)),
    },
  });
}

const blocks = blocksOf(BLOCK_DATA);
const mib = BLOCK_DATA / 2 ** 20;

// squashfs zstd blocks (mksquashfs' default zstd level is 15).
const zstdBlocks = blocks.map((b) => zstd.compress(b, { compressionLevel: 15 }));
const zstdNow = decompressorFor("zstd");
const zstdKinds =
  (await zstdReady().then(() => zstdDecoder())) === "native"
    ? (["native", "fzstd"] as const)
    : (["fzstd"] as const);
for (const kind of zstdKinds) {
  await zstdReady(kind);
  await row(
    `decompress squashfs zstd blocks (128 KiB)${kind === "fzstd" ? ", fzstd fallback" : ""}`,
    "zstd-napi (native)",
    mib,
    async () => {
      for (const [i, b] of zstdBlocks.entries()) await zstdNow(b, blocks[i]?.length ?? BLOCK);
    },
    async () => {
      for (const b of zstdBlocks) zstd.decompress(b);
    },
    kind === "native" ? ZSTD_GOAL : GOAL,
  );
}

// squashfs xz blocks made by the real xz (preset 6, CRC32 check, as mksquashfs' xz compressor
// writes them; @napi-rs/lzma's own encoder here stores this data uncompressed).
const xzSource = blocksOf(XZ_DATA);
const xzBlocks = xzSource.map((b) =>
  execFileSync("xz", ["-6", "--check=crc32", "-c"], { input: b }),
);
const xzNow = decompressorFor("xz");
await row(
  "decompress squashfs xz blocks (128 KiB)",
  "@napi-rs/lzma (native, before)",
  XZ_DATA / 2 ** 20,
  async () => {
    for (const b of xzBlocks) await xzNow(b, BLOCK);
  },
  async () => {
    for (const b of xzBlocks) await xz.decompress(b);
  },
);

// A zstd layer: one stream, read in 1 MiB chunks as an OCI pull reads its download.
const layer = zstd.compress(data, { compressionLevel: 3 });
const chunks: Buffer[] = [];
for (let at = 0; at < layer.length; at += 1 << 20) chunks.push(layer.subarray(at, at + (1 << 20)));
const sink = () =>
  new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
for (const kind of zstdKinds) {
  await zstdReady(kind);
  await row(
    `decompress a zstd layer (48 MiB stream)${kind === "fzstd" ? ", fzstd fallback" : ""}`,
    "zstd-napi DecompressStream (native)",
    LAYER_DATA / 2 ** 20,
    () => pipeline(Readable.from(chunks), createZstdDecompressStream(), sink()),
    () => pipeline(Readable.from(chunks), new zstd.DecompressStream(), sink()),
    kind === "native" ? ZSTD_GOAL : GOAL,
  );
}
