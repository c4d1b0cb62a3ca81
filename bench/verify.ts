// `extctl verify --full` of a 1 GiB verity image against `veritysetup verify` of the same data
// and hash area, side by side; also throughput against `openssl speed -evp sha256`.
// Run: node --import tsx bench/verify.ts  (BENCH_SIZE_MIB to change the size, BENCH_RUNS runs).
import { execFileSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import { open, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { emitSkipped, extctl, sideBySide } from "./lib.js";

const NAME = "verify --full 1 GiB";
const GOAL = 1.0;

function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** openssl's single-thread SHA-256 rate over 4 KiB blocks, bytes per second. */
function opensslSha256Rate(): number {
  const out = execFileSync(
    "openssl",
    ["speed", "-evp", "sha256", "-bytes", "4096", "-seconds", "2"],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  const line = out.split("\n").find((l) => /^sha256\s/i.test(l.trim()));
  const k = Number(line?.trim().split(/\s+/).at(-1)?.replace(/k$/, ""));
  return k * 1000;
}

async function main(): Promise<void> {
  if (!has("veritysetup") || !has("openssl")) {
    emitSkipped(NAME, "veritysetup verify", GOAL, "veritysetup or openssl is not installed");
    return;
  }
  const sizeMib = Number(process.env.BENCH_SIZE_MIB ?? 1024);
  const dir = await mkdtemp(path.join(os.tmpdir(), "extctl-bench-verify-"));
  try {
    // A bare image: squashfs magic first (so extctl recognises it), then incompressible data.
    const image = path.join(dir, "bench.raw");
    const handle = await open(image, "w");
    const cipher = createCipheriv("aes-256-ctr", randomBytes(32), Buffer.alloc(16));
    const chunk = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < (sizeMib * 1024 * 1024) / chunk.length; i++) {
      const bytes = cipher.update(chunk);
      if (i === 0) bytes.write("hsqs", 0, "latin1");
      await handle.write(bytes);
    }
    await handle.close();
    const hash = path.join(dir, "bench.verity");
    const out = execFileSync("veritysetup", ["format", image, hash], { encoding: "utf8" });
    const rootHash = /Root hash:\s*([0-9a-f]+)/.exec(out)?.[1] as string;
    await writeFile(path.join(dir, "bench.roothash"), rootHash);

    const result = await sideBySide({
      name: sizeMib === 1024 ? NAME : `verify --full ${sizeMib} MiB`,
      goal: GOAL,
      extctl: { argv: extctl("verify", "--full", "--policy", "verity", image) },
      peer: { argv: ["veritysetup", "verify", image, hash, rootHash] },
      peerName: "veritysetup verify",
      note: `${os.availableParallelism()} hashing threads; page cache warm`,
    });
    const rate = opensslSha256Rate();
    const bytes = sizeMib * 1024 * 1024;
    const extctlRate = bytes / result.extctl_s;
    process.stderr.write(
      `extctl verify --full: ${(extctlRate / 1e6).toFixed(0)} MB/s; veritysetup verify: ${(bytes / result.peer_s / 1e6).toFixed(0)} MB/s; openssl sha256 (1 thread, 4 KiB): ${(rate / 1e6).toFixed(0)} MB/s; ratio ${result.ratio.toFixed(2)}; peak RSS ${result.peak_rss_mib.toFixed(0)} MiB\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
