// Shared benchmark harness: run extctl and its peer side by side several times, take medians and
// peak memory, and print one machine-readable line per row that bench/run.sh collects.
//
// The convention every bench/*.ts follows (bench/run.sh reads nothing else from its stdout):
//
//   BENCH {"name":"https install 256 MiB","extctl_s":0.61,"peer":"curl","peer_s":0.55,
//          "ratio":1.11,"goal":1.5,"peak_rss_mib":88.1,"peer_peak_rss_mib":9.8,"runs":5}
//
// - name: the row's label; extctl_s / peer_s: median wall seconds over `runs` interleaved runs;
//   ratio: extctl_s / peer_s (lower is better); goal: the ratio the row must stay at or under;
//   peak_rss_mib: the largest maximum RSS of any extctl run (from /usr/bin/time -f %M), MiB.
// - Optional: peer_peak_rss_mib, runs, note (a short free text), skipped (a reason; the other
//   numbers may then be 0), extra (an object of other numbers worth keeping).
// - Use emitBench() to print the line, and sideBySide() to make it.
//
// Run as a program (`node --import tsx bench/lib.ts report RESULTS.jsonl OUTDIR`), it turns the
// collected lines into OUTDIR/RESULTS.md and OUTDIR/ratios.svg.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The built CLI; EXTCTL_BIN points the harness at another build (e.g. a clean checkout's). */
export const EXTCTL_BIN = process.env.EXTCTL_BIN
  ? path.resolve(process.env.EXTCTL_BIN)
  : path.join(REPO, "bin/extctl.cjs");
const TIME_BIN = "/usr/bin/time";

export interface BenchResult {
  name: string;
  extctl_s: number;
  peer: string;
  peer_s: number;
  ratio: number;
  goal: number;
  peak_rss_mib: number;
  peer_peak_rss_mib?: number;
  runs?: number;
  note?: string;
  skipped?: string;
  extra?: Record<string, number | string>;
}

export const BENCH_PREFIX = "BENCH ";

export function emitBench(result: BenchResult): void {
  process.stdout.write(`${BENCH_PREFIX}${JSON.stringify(result)}\n`);
}

/** Prints a row that could not be measured here, with the reason. */
export function emitSkipped(name: string, peer: string, goal: number, reason: string): void {
  emitBench({
    name,
    extctl_s: 0,
    peer,
    peer_s: 0,
    ratio: 0,
    goal,
    peak_rss_mib: 0,
    skipped: reason,
  });
}

/** Runs per row: BENCH_RUNS, or the given default. */
export function benchRuns(fallback = 5): number {
  const n = Number(process.env.BENCH_RUNS);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface Measurement {
  seconds: number;
  /** Maximum resident set size of the command, MiB (0 when /usr/bin/time is missing). */
  peakRssMib: number;
  /**
   * User plus system CPU seconds of the command and its children (from /usr/bin/time, 10 ms
   * steps; NaN when it is missing): steadier than wall time on a machine others share.
   */
  cpuSeconds: number;
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandSpec {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run before every timed run (not timed), e.g. to delete the last run's output. */
  before?: () => Promise<void> | void;
  /** A non-zero exit fails the benchmark unless this is set. */
  allowFailure?: boolean;
}

/** argv that runs the built extctl CLI with these arguments. */
export function extctl(...args: string[]): string[] {
  return [process.execPath, EXTCTL_BIN, ...args];
}

/**
 * Runs a command once (asynchronously, so that a server in this process keeps serving), timing
 * it from spawn to exit and reading its peak RSS from /usr/bin/time.
 */
export async function measure(spec: CommandSpec): Promise<Measurement> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), "extctl-bench-"));
  const timeFile = path.join(scratch, "time");
  const useTime = existsSync(TIME_BIN);
  const argv = useTime
    ? [TIME_BIN, "-f", "%M %U %S", "-o", timeFile, ...spec.argv]
    : [...spec.argv];
  try {
    const started = process.hrtime.bigint();
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(argv[0] as string, argv.slice(1), {
          env: { ...process.env, NO_COLOR: "1", ...spec.env },
          cwd: spec.cwd ?? REPO,
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (b: Buffer) => {
          if (stdout.length < 1 << 20) stdout += b.toString();
        });
        child.stderr.on("data", (b: Buffer) => {
          if (stderr.length < 1 << 20) stderr += b.toString();
        });
        child.on("error", reject);
        child.on("close", (code, signal) =>
          resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }),
        );
      },
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    let peakRssMib = 0;
    let cpuSeconds = Number.NaN;
    if (useTime) {
      const text = await readFile(timeFile, "utf8").catch(() => "");
      const [kib, user, sys] = (text.trim().split("\n").at(-1) ?? "").split(" ").map(Number);
      if (kib !== undefined && Number.isFinite(kib)) peakRssMib = kib / 1024;
      if (user !== undefined && sys !== undefined) cpuSeconds = user + sys;
    }
    if (result.code !== 0 && !spec.allowFailure) {
      throw new Error(
        `${spec.argv.join(" ")} exited ${result.code}: ${result.stderr.trim().slice(-2000)}`,
      );
    }
    return { seconds, peakRssMib, cpuSeconds, ...result };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

export interface SideBySide {
  name: string;
  goal: number;
  extctl: CommandSpec;
  peer: CommandSpec;
  /** Label of the peer in the table, e.g. "curl" or "node -e 0". */
  peerName: string;
  runs?: number;
  /** Untimed runs of each before measuring (page cache, JIT of node itself). Default 1. */
  warmup?: number;
  note?: string;
  extra?: Record<string, number | string>;
}

/**
 * Alternates extctl and peer runs (so both see the same background noise on a shared machine),
 * then prints and returns the row.
 */
export async function sideBySide(spec: SideBySide): Promise<BenchResult> {
  const runs = spec.runs ?? benchRuns();
  for (let i = 0; i < (spec.warmup ?? 1); i++) {
    await spec.extctl.before?.();
    await measure(spec.extctl);
    await spec.peer.before?.();
    await measure(spec.peer);
  }
  const ours: Measurement[] = [];
  const theirs: Measurement[] = [];
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? ["extctl", "peer"] : ["peer", "extctl"];
    for (const who of order) {
      const cmd = who === "extctl" ? spec.extctl : spec.peer;
      await cmd.before?.();
      (who === "extctl" ? ours : theirs).push(await measure(cmd));
    }
  }
  const extctlS = median(ours.map((m) => m.seconds));
  const peerS = median(theirs.map((m) => m.seconds));
  const extctlCpu = median(ours.map((m) => m.cpuSeconds));
  const peerCpu = median(theirs.map((m) => m.cpuSeconds));
  // CPU time beside wall time: a busy machine stretches wall time, hardly the work done.
  const cpu = Number.isFinite(extctlCpu + peerCpu)
    ? {
        extctl_cpu_s: round(extctlCpu, 3),
        peer_cpu_s: round(peerCpu, 3),
        ...(peerCpu > 0 ? { cpu_ratio: round(extctlCpu / peerCpu, 3) } : {}),
      }
    : {};
  const result: BenchResult = {
    name: spec.name,
    extctl_s: round(extctlS, 4),
    peer: spec.peerName,
    peer_s: round(peerS, 4),
    ratio: round(extctlS / peerS, 3),
    goal: spec.goal,
    peak_rss_mib: round(Math.max(...ours.map((m) => m.peakRssMib)), 1),
    peer_peak_rss_mib: round(Math.max(...theirs.map((m) => m.peakRssMib)), 1),
    runs,
    ...(spec.note ? { note: spec.note } : {}),
    extra: { ...cpu, ...spec.extra },
  };
  emitBench(result);
  return result;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A temp dir removed when the process exits normally. */
export async function benchDir(prefix = "extctl-bench-"): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The os-release every bench root has: extensions with ID=debian VERSION_ID=12 merge there. */
export const BENCH_OS_RELEASE = "ID=debian\nVERSION_ID=12\n";

/**
 * A node root for a bench at `root` (made afresh): usr/lib/os-release plus the directories
 * given (node paths relative to the root, e.g. "var/lib/kairos/extensions/active").
 */
export async function benchRoot(root: string, dirs: readonly string[] = []): Promise<string> {
  await rm(root, { recursive: true, force: true });
  for (const d of ["usr/lib", ...dirs]) await mkdir(path.join(root, d), { recursive: true });
  await writeFile(path.join(root, "usr/lib/os-release"), BENCH_OS_RELEASE);
  return root;
}

// ---------------------------------------------------------------------------------------------
// The report: RESULTS.md and ratios.svg from the collected BENCH lines.

export interface MachineInfo {
  date: string;
  machine: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    machine: `${os.type()} ${os.release()} ${os.arch()}, ${cpus.length} x ${cpus[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM`,
    node: process.version,
  };
}

export function parseBenchLines(text: string): BenchResult[] {
  const results: BenchResult[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(BENCH_PREFIX)) continue;
    try {
      const value = JSON.parse(line.slice(BENCH_PREFIX.length)) as BenchResult;
      if (typeof value.name === "string") results.push(value);
    } catch {
      /* not ours */
    }
  }
  return results;
}

function fmt(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) || value === 0 ? "-" : String(value);
}

/** The facts above every results table: when, where, and how to read it. */
function headerLines(info: MachineInfo): string[] {
  return [
    `- date: ${info.date}`,
    `- machine: ${info.machine}`,
    `- node: ${info.node}`,
    "- each row runs extctl and its peer alternately in one run; times are medians of the runs,",
    "  ratio = extctl / peer (lower is better), memory is the largest peak RSS of any run.",
  ];
}

function tableLines(results: readonly BenchResult[]): string[] {
  const lines = [
    "| benchmark | extctl (s) | peer | peer (s) | ratio | goal | met | extctl peak RSS (MiB) | peer peak RSS (MiB) | runs |",
    "|---|---:|---|---:|---:|---:|:---:|---:|---:|---:|",
  ];
  // A peer can be a shell pipeline: its "|" would end the table cell.
  const cell = (text: string) => text.replaceAll("|", "\\|");
  for (const r of results) {
    if (r.skipped) {
      lines.push(
        `| ${r.name} | - | ${cell(r.peer)} | - | - | ${r.goal} | skipped: ${r.skipped} | - | - | - |`,
      );
      continue;
    }
    const met = r.ratio <= r.goal ? "yes" : "**no**";
    lines.push(
      `| ${r.name} | ${fmt(r.extctl_s)} | ${cell(r.peer)} | ${fmt(r.peer_s)} | ${fmt(r.ratio)} | ${r.goal} | ${met} | ${fmt(r.peak_rss_mib)} | ${fmt(r.peer_peak_rss_mib)} | ${r.runs ?? "-"} |`,
    );
  }
  return lines;
}

export function renderMarkdown(
  results: readonly BenchResult[],
  info: MachineInfo,
  failures: readonly string[] = [],
): string {
  const lines = [
    "<!-- generated by bench/run.sh; do not edit -->",
    "# extctl benchmarks",
    "",
    ...headerLines(info),
    "",
    ...tableLines(results),
  ];
  const notes = results.filter((r) => r.note);
  if (notes.length > 0) {
    lines.push("", "Notes:");
    for (const r of notes) lines.push(`- ${r.name}: ${r.note}`);
  }
  if (failures.length > 0) {
    lines.push("", "Benchmark files that failed:");
    for (const f of failures) lines.push(`- ${f}`);
  }
  lines.push("", "![ratios](ratios.svg)", "");
  return lines.join("\n");
}

function escapeXml(text: string): string {
  return text.replace(
    /[<>&"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c] as string,
  );
}

/** A horizontal bar per row: the ratio, a tick at the goal, a line at 1 (parity with the peer). */
export function renderSvg(results: readonly BenchResult[], info: MachineInfo): string {
  const rows = results.filter((r) => !r.skipped && Number.isFinite(r.ratio) && r.ratio > 0);
  const labelW = 380;
  const plotW = 440;
  const rowH = 26;
  const top = 44;
  const height = top + rows.length * rowH + 40;
  const width = labelW + plotW + 80;
  // Log scale: ratios from 1/4 to 64 all stay readable.
  const values = rows.flatMap((r) => [r.ratio, r.goal]);
  const lo = 2 ** Math.floor(Math.log2(Math.min(0.5, ...values)));
  const hi = 2 ** Math.ceil(Math.log2(Math.max(2, ...values)));
  const x = (v: number) =>
    labelW +
    ((Math.log2(Math.max(v, lo)) - Math.log2(lo)) / (Math.log2(hi) - Math.log2(lo))) * plotW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">extctl / peer time ratio (log scale, lower is better; | = goal, dashed = parity)</text>`,
    `<text x="10" y="34" fill="#555">${escapeXml(`${info.date}, ${info.machine}, node ${info.node}`)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const met = r.ratio <= r.goal;
    parts.push(
      `<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${escapeXml(`${r.name} (vs ${r.peer})`)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${Math.max(1, x(r.ratio) - labelW).toFixed(1)}" height="${rowH - 8}" fill="${met ? "#3a8f4b" : "#c0392b"}"/>`,
      `<line x1="${x(r.goal).toFixed(1)}" x2="${x(r.goal).toFixed(1)}" y1="${y + 1}" y2="${y + rowH - 1}" stroke="black" stroke-width="2"/>`,
      `<text x="${(x(r.ratio) + 6).toFixed(1)}" y="${y + 16}">${r.ratio}x</text>`,
    );
  });
  const axisY = top + rows.length * rowH + 6;
  parts.push(
    `<line x1="${x(1).toFixed(1)}" x2="${x(1).toFixed(1)}" y1="${top}" y2="${axisY}" stroke="#888" stroke-dasharray="4 3"/>`,
    `<line x1="${labelW}" x2="${labelW + plotW}" y1="${axisY}" y2="${axisY}" stroke="black"/>`,
  );
  for (let v = lo; v <= hi; v *= 2) {
    parts.push(
      `<text x="${x(v).toFixed(1)}" y="${axisY + 16}" text-anchor="middle" fill="#555">${v}</text>`,
    );
  }
  parts.push("</svg>", "");
  return parts.join("\n");
}

const README_START = "<!-- bench results: written by bash bench/run.sh -->";
const README_END = "<!-- /bench results -->";

/** `readme` with the block between its bench markers replaced by this run's header and table. */
export function withResultsBlock(
  readme: string,
  results: readonly BenchResult[],
  info: MachineInfo,
): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < start)
    throw new Error(`the document has no "${README_START}" ... "${README_END}" block`);
  const block = [README_START, "", ...headerLines(info), "", ...tableLines(results), ""];
  return readme.slice(0, start) + block.join("\n") + readme.slice(end);
}

async function reportMain(args: readonly string[]): Promise<void> {
  const [resultsFile, outDir, failuresFile, readmeFile] = args;
  if (!resultsFile || !outDir)
    throw new Error("usage: lib.ts report RESULTS.jsonl OUTDIR [FAILURES [DOCUMENT]]");
  const results = parseBenchLines(await readFile(resultsFile, "utf8"));
  const failures = failuresFile
    ? (await readFile(failuresFile, "utf8").catch(() => "")).split("\n").filter(Boolean)
    : [];
  const info = machineInfo();
  await writeFile(path.join(outDir, "RESULTS.md"), renderMarkdown(results, info, failures));
  await writeFile(path.join(outDir, "ratios.svg"), renderSvg(results, info));
  if (readmeFile)
    await writeFile(
      readmeFile,
      withResultsBlock(await readFile(readmeFile, "utf8"), results, info),
    );
  process.stdout.write(renderMarkdown(results, info, failures));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === "report") {
    reportMain(process.argv.slice(3)).catch((e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Which modules a command loads: an --import hook records every ESM resolution and CommonJS load.

/** Packages that simple commands (--version, --help, list, status) must not load. */
export const HEAVY_PACKAGES = [
  "pkijs",
  "asn1js",
  "undici",
  "tar-stream",
  "yaml",
  "cli-progress",
  "fzstd",
];

const TRACE_HOOK = `// Records loaded modules into $EXTCTL_LOAD_TRACE (made by bench/lib.ts).
import { register, createRequire } from "node:module";
import { appendFileSync } from "node:fs";
const out = process.env.EXTCTL_LOAD_TRACE;
const resolveHook = 'import { appendFileSync } from "node:fs";' +
  "export async function resolve(s, c, next) { const r = await next(s, c);" +
  " appendFileSync(" + JSON.stringify(out) + ", r.url + '\\\\n'); return r; }";
register("data:text/javascript," + encodeURIComponent(resolveHook));
const Module = createRequire(import.meta.url)("node:module");
const load = Module._load;
Module._load = function (request, parent, isMain) {
  try { appendFileSync(out, Module._resolveFilename(request, parent, isMain) + "\\n"); } catch {}
  return load.apply(this, arguments);
};
`;

/** Runs extctl with these arguments and returns every module URL or path it loaded. */
export async function loadedModules(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ modules: string[]; code: number; stderr: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "extctl-trace-"));
  try {
    const hook = path.join(dir, "trace-hook.mjs");
    const out = path.join(dir, "loaded.txt");
    await writeFile(hook, TRACE_HOOK);
    await writeFile(out, "");
    const m = await measure({
      argv: [process.execPath, "--import", hook, EXTCTL_BIN, ...args],
      env: { ...env, EXTCTL_LOAD_TRACE: out },
      allowFailure: true,
    });
    const modules = [...new Set((await readFile(out, "utf8")).split("\n").filter(Boolean))];
    return { modules, code: m.code, stderr: m.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The heavy packages among loaded module paths/URLs. */
export function heavyPackagesIn(modules: readonly string[]): string[] {
  const found = new Set<string>();
  for (const m of modules) {
    for (const pkg of HEAVY_PACKAGES) {
      if (m.includes(`/node_modules/${pkg}/`)) found.add(pkg);
    }
  }
  return [...found].sort();
}

/** Whether `cmd` is on PATH (a missing peer makes a bench row skipped, not failed). */
export function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
