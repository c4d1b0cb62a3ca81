// Benchmark: `extctl build` of a ~200 MiB tree into a signed erofs DDI against the same steps by
// hand (mkfs.erofs, veritysetup format, openssl smime -sign), side by side in one run.
// Run: node --import tsx bench/build.ts [--mib 200] [--runs 3]
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const self = fileURLToPath(import.meta.url);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

function sh(command: string, args: string[], input?: string): string {
  const r = spawnSync(command, args, { encoding: "utf8", input, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${command} failed: ${r.stderr}`);
  return r.stdout;
}

async function makeTree(dir: string, mib: number): Promise<void> {
  // Half random (incompressible), half text-like, in files of 1 MiB and a few thousand small ones.
  await mkdir(path.join(dir, "usr/lib/big"), { recursive: true });
  await mkdir(path.join(dir, "usr/share/small"), { recursive: true });
  const text = Buffer.from(
    "lorem ipsum dolor sit amet, consectetur adipiscing elit; ".repeat(20000),
  );
  for (let i = 0; i < mib - 8; i++) {
    const data = i % 2 === 0 ? randomBytes(1 << 20) : text.subarray(i % 97, (i % 97) + (1 << 20));
    await writeFile(path.join(dir, "usr/lib/big", `f${i}.bin`), data);
  }
  for (let i = 0; i < 4000; i++) {
    await writeFile(
      path.join(dir, "usr/share/small", `s${i}.txt`),
      randomBytes(1024).toString("hex"),
    );
  }
}

/** Child mode: one extctl build, reporting its time and this process's peak RSS. */
async function child(): Promise<void> {
  const [src, out, key, cert] = process.argv.slice(3);
  const { buildImage } = await import("../src/operations/build.js");
  const { createContext } = await import("../src/util/context.js");
  const { silentLogger } = await import("../src/util/log.js");
  const started = performance.now();
  await buildImage(createContext({ log: silentLogger }), {
    kind: "sysext",
    name: "bench",
    source: src!,
    outputDir: out!,
    arch: "amd64",
    privateKey: key!,
    certificate: cert!,
  });
  const ms = performance.now() - started;
  process.stdout.write(JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS }) + "\n");
}

function byHand(src: string, out: string, key: string, cert: string): number {
  const started = performance.now();
  const img = path.join(out, "hand.erofs");
  const hash = path.join(out, "hand.verity");
  sh("mkfs.erofs", [
    "--quiet",
    "-zlz4hc",
    "--all-root",
    "-U",
    "0c8a6d4a-52b4-4c3e-9e4a-6c7b2f0a1d11",
    img,
    src,
  ]);
  const format = sh("veritysetup", ["format", img, hash]);
  const rootHash = /Root hash:\s+([0-9a-f]+)/.exec(format)?.[1];
  if (!rootHash) throw new Error("no root hash from veritysetup");
  const content = path.join(out, "hand.roothash");
  writeFileSync(content, rootHash);
  sh("openssl", [
    "smime",
    "-sign",
    "-noattr",
    "-binary",
    "-in",
    content,
    "-signer",
    cert,
    "-inkey",
    key,
    "-outform",
    "der",
    "-out",
    path.join(out, "hand.p7s"),
  ]);
  return performance.now() - started;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  if (process.argv[2] === "--child") return child();
  const mib = arg("--mib", 200);
  const runs = arg("--runs", 3);
  const work = await mkdtemp(path.join(tmpdir(), "extctl-bench-build-"));
  try {
    const src = path.join(work, "tree");
    await makeTree(src, mib);
    const key = path.join(work, "key.pem");
    const cert = path.join(work, "cert.pem");
    sh("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-subj",
      "/CN=bench",
      "-days",
      "2",
    ]);
    const ours: number[] = [];
    const hand: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < runs; i++) {
      const outA = path.join(work, `a${i}`);
      const outB = path.join(work, `b${i}`);
      await mkdir(outA);
      await mkdir(outB);
      sh("sync", []);
      hand.push(byHand(src, outB, key, cert));
      await rm(outB, { recursive: true });
      sh("sync", []);
      const r = JSON.parse(
        sh(process.execPath, ["--import", "tsx", self, "--child", src, outA, key, cert]),
      ) as {
        ms: number;
        maxRssKiB: number;
      };
      ours.push(r.ms);
      rss.push(r.maxRssKiB / 1024);
      await rm(outA, { recursive: true });
      process.stderr.write(
        `run ${i + 1}: extctl ${(r.ms / 1000).toFixed(2)} s, by hand ${(hand[i]! / 1000).toFixed(2)} s\n`,
      );
    }
    const ratio = median(ours.map((o, i) => o / hand[i]!));
    console.log(`build of a ${mib} MiB tree into a signed erofs DDI (lz4hc), ${runs} runs`);
    console.log(`  extctl build       median ${(median(ours) / 1000).toFixed(2)} s`);
    console.log(
      `  by hand            median ${(median(hand) / 1000).toFixed(2)} s  (mkfs.erofs + veritysetup format + openssl smime -sign)`,
    );
    console.log(`  ratio (median)     ${ratio.toFixed(3)}  (goal <= 1.15)`);
    console.log(`  peak RSS (extctl)  ${Math.max(...rss).toFixed(0)} MiB  (goal <= 200 MiB)`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
