// Benchmark: `extctl build` of a ~200 MiB tree into a signed erofs DDI against the same steps by
// hand (mkfs.erofs, veritysetup format, openssl smime -sign), side by side in one run.
// Run: node --import tsx bench/build.ts [--mib 200] [--runs N]  (BENCH_RUNS, default 5); prints
// one BENCH line (bench/lib.ts) whose ratio is median(extctl) / median(by hand).
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { benchRuns, emitBench, median, round } from "./lib.js";
import { makeSigningCert } from "../test/helpers/keys.js";

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
  const startup = process.cpuUsage();
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
  process.stdout.write(
    JSON.stringify({
      ms,
      maxRssKiB: process.resourceUsage().maxRSS,
      startupCpuMs: (startup.user + startup.system) / 1000,
    }) + "\n",
  );
}

interface Timed {
  wallMs: number;
  /** User + system CPU of the process and everything it waited for. */
  cpuMs: number;
  stdout: string;
}

/** Runs a command under GNU time: CPU time is far less disturbed by a busy machine than wall time. */
function timed(command: string, args: string[]): Timed {
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %U %S", command, ...args], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${command} failed: ${r.stderr}`);
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (!m) throw new Error(`no timing from /usr/bin/time: ${r.stderr}`);
  return {
    wallMs: Number(m[1]) * 1000,
    cpuMs: (Number(m[2]) + Number(m[3])) * 1000,
    stdout: r.stdout,
  };
}

function byHand(src: string, out: string, key: string, cert: string): Timed {
  const img = path.join(out, "hand.erofs");
  const hash = path.join(out, "hand.verity");
  const content = path.join(out, "hand.roothash");
  const script = [
    `mkfs.erofs --quiet -zlz4hc --all-root -U 0c8a6d4a-52b4-4c3e-9e4a-6c7b2f0a1d11 "$1" "$2"`,
    `veritysetup format "$1" "$3" | sed -n 's/^Root hash:[[:space:]]*//p' | tr -d '\\n' > "$4"`,
    `openssl smime -sign -noattr -binary -in "$4" -signer "$5" -inkey "$6" -outform der -out "$7"`,
  ].join(" && ");
  const r = timed("bash", [
    "-c",
    script,
    "hand",
    img,
    src,
    hash,
    content,
    cert,
    key,
    path.join(out, "hand.p7s"),
  ]);
  if (readFileSync(content, "utf8").length !== 64) throw new Error("no root hash from veritysetup");
  return r;
}

async function main(): Promise<void> {
  if (process.argv[2] === "--child") return child();
  const mib = arg("--mib", 200);
  const runs = arg("--runs", benchRuns(5));
  const work = await mkdtemp(path.join(tmpdir(), "extctl-bench-build-"));
  try {
    const src = path.join(work, "tree");
    await makeTree(src, mib);
    const { key, cert } = makeSigningCert(work, "bench", { subject: "/CN=bench" });
    const ours: Timed[] = [];
    const hand: Timed[] = [];
    const rss: number[] = [];
    const runOurs = async (i: number) => {
      const outA = path.join(work, `a${i}`);
      await mkdir(outA);
      sh("sync", []);
      const t = timed(process.execPath, ["--import", "tsx", self, "--child", src, outA, key, cert]);
      const r = JSON.parse(t.stdout) as { ms: number; maxRssKiB: number; startupCpuMs: number };
      // Count the build, not Node + tsx starting up.
      ours.push({ wallMs: r.ms, cpuMs: t.cpuMs - r.startupCpuMs, stdout: "" });
      rss.push(r.maxRssKiB / 1024);
      await rm(outA, { recursive: true });
    };
    const runHand = async (i: number) => {
      const outB = path.join(work, `b${i}`);
      await mkdir(outB);
      sh("sync", []);
      hand.push(byHand(src, outB, key, cert));
      await rm(outB, { recursive: true });
    };
    for (let i = 0; i < runs; i++) {
      // Alternate who goes first so a burst of load on the shared machine hits both alike.
      if (i % 2 === 0) {
        await runHand(i);
        await runOurs(i);
      } else {
        await runOurs(i);
        await runHand(i);
      }
      const o = ours[i]!;
      const h = hand[i]!;
      process.stderr.write(
        `run ${i + 1}: extctl ${(o.wallMs / 1000).toFixed(2)} s wall / ${(o.cpuMs / 1000).toFixed(2)} s cpu, ` +
          `by hand ${(h.wallMs / 1000).toFixed(2)} s wall / ${(h.cpuMs / 1000).toFixed(2)} s cpu\n`,
      );
    }
    // The ratio of the medians, as every BENCH row reports it (a median of per-run ratios can
    // disagree with the two medians printed next to it).
    const med = (xs: Timed[], k: "wallMs" | "cpuMs") => median(xs.map((x) => x[k])) / 1000;
    const wallRatio = med(ours, "wallMs") / med(hand, "wallMs");
    const cpuRatio = med(ours, "cpuMs") / med(hand, "cpuMs");
    const peakRss = Math.max(...rss);
    const log = (line: string) => process.stderr.write(`${line}\n`);
    log(`build of a ${mib} MiB tree into a signed erofs DDI (lz4hc), ${runs} runs`);
    log(
      `  extctl build       median ${med(ours, "wallMs").toFixed(2)} s wall, ${med(ours, "cpuMs").toFixed(2)} s cpu`,
    );
    log(
      `  by hand            median ${med(hand, "wallMs").toFixed(2)} s wall, ${med(hand, "cpuMs").toFixed(2)} s cpu  (mkfs.erofs + veritysetup format + openssl smime -sign)`,
    );
    log(
      `  ratio of medians   ${wallRatio.toFixed(3)} wall, ${cpuRatio.toFixed(3)} cpu  (goal <= 1.15)`,
    );
    log(`  peak RSS (extctl)  ${peakRss.toFixed(0)} MiB  (goal <= 200 MiB)`);
    emitBench({
      name: `build ${mib} MiB tree, signed erofs DDI`,
      extctl_s: round(med(ours, "wallMs"), 3),
      peer: "mkfs.erofs + veritysetup format + openssl smime -sign",
      peer_s: round(med(hand, "wallMs"), 3),
      ratio: round(wallRatio, 3),
      goal: 1.15,
      peak_rss_mib: round(peakRss, 1),
      runs,
      note: `peak RSS goal 200 MiB${peakRss > 200 ? " (over)" : ""}; extctl timed inside one process (no node start-up); load ${loadavg()[0]!.toFixed(2)} at the end`,
      extra: {
        cpu_ratio: round(cpuRatio, 3),
        extctl_cpu_s: round(med(ours, "cpuMs"), 3),
        peer_cpu_s: round(med(hand, "cpuMs"), 3),
      },
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
