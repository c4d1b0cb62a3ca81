// Shared pieces of the fault and load suite: trial counts, real extctl processes that can be killed
// at any moment, the store invariants every fault must leave intact, and the counts for REPORT.md.
//
// FAULT_TRIALS sets trials per operation (10 by default, as in CI; scripts/faults.sh uses 100).
// FAULT_REPORT_FILE, when set, collects one JSON line of counts per test for scripts/faults.sh.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, lstat, readFile, readdir, readlink, stat } from "node:fs/promises";
import path from "node:path";
import { EXTCTL_BIN as DEFAULT_BIN } from "../helpers/cli.js";
import { SUMMARY_CACHE_FILE } from "../../src/domain/store/summary-cache.js";

/** The built CLI; EXTCTL_BIN points the suite at another build. */
export const EXTCTL_BIN = process.env.EXTCTL_BIN
  ? path.resolve(process.env.EXTCTL_BIN)
  : DEFAULT_BIN;

export function faultTrials(fallback = 10): number {
  const n = Number(process.env.FAULT_TRIALS);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export interface FaultCounts {
  /** e.g. "crash: install file:" */
  name: string;
  kind: "crash" | "disk-full" | "load" | "fuzz" | "hostile-server";
  trials: number;
  /** Trials whose state after the fault was consistent (nothing partial, no dangling link). */
  survived: number;
  /** Trials where the fault hit while extctl was still running (the others hit after it ended). */
  hitMidway?: number;
  /** Bad inputs tried (fuzz). */
  inputs?: number;
  /** Files or links lost or left half-written (must be 0). */
  lost: number;
  note?: string;
}

export async function recordFaults(counts: FaultCounts): Promise<void> {
  const file = process.env.FAULT_REPORT_FILE;
  if (file) await appendFile(file, `${JSON.stringify(counts)}\n`);
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Kill the whole process group with SIGKILL after this many ms (the crash being tested). */
  killAfterMs?: number;
  /** Hard limit: SIGKILL after this many ms and mark the run as hung. Default 60 s. */
  timeoutMs?: number;
  /**
   * Wrap the command in a private mount namespace (with /run bind-mounted on itself, as
   * systemd-sysext wants), so merges never reach the host's mount table.
   */
  namespace?: boolean;
  /**
   * With `namespace`: also bind-mount ROOT/run on itself, so that it is a mount of its own as on
   * a node (extctl then shows systemd-sysext --root the linked images); its files stay on disk.
   */
  nodeRoot?: string;
}

export interface KilledRun extends Run {
  /** True when our SIGKILL (crash or timeout) ended it. */
  killed: boolean;
  hung: boolean;
}

/** Runs argv (extctl when it starts with "extctl") as its own process group. */
export function runProcess(argv: readonly string[], options: RunOptions = {}): Promise<KilledRun> {
  let command = argv[0] === "extctl" ? [process.execPath, EXTCTL_BIN, ...argv.slice(1)] : [...argv];
  if (options.namespace) {
    command = [
      "unshare",
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      "mount --make-rshared / && mount --bind /run /run && " +
        'if [ -n "$1" ]; then mount --bind "$1" "$1"; fi && shift && exec "$@"',
      "sh",
      options.nodeRoot ? path.join(options.nodeRoot, "run") : "",
      ...command,
    ];
  }
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command[0] as string, command.slice(1), {
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let killed = false;
    let hung = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    };
    const crash =
      options.killAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            killed = true;
            killGroup();
          }, options.killAfterMs);
    const limit = setTimeout(() => {
      hung = true;
      killed = true;
      killGroup();
    }, options.timeoutMs ?? 60_000);
    child.stdout?.on("data", (b: Buffer) => {
      if (stdout.length < 1 << 20) stdout += b.toString();
    });
    child.stderr?.on("data", (b: Buffer) => {
      if (stderr.length < 1 << 20) stderr += b.toString();
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (crash) clearTimeout(crash);
      clearTimeout(limit);
      // A crash timer that fired after a clean exit did not hit anything.
      if (killed && signal !== "SIGKILL") killed = false;
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, killed, hung });
    });
  });
}

export function extctl(args: readonly string[], options: RunOptions = {}): Promise<KilledRun> {
  return runProcess(["extctl", ...args], options);
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(file: string): Promise<string> {
  return sha256(await readFile(file));
}

const STORES = ["/var/lib/kairos/extensions", "/var/lib/kairos/confexts"];
const RUNTIMES = ["/run/extensions", "/run/confexts"];
const PROFILES = ["active", "passive", "recovery", "common"];

export interface StoreCheck {
  /** Everything wrong, as sentences; empty when the store is consistent. */
  problems: string[];
  /** Leftover temp files (.extctl-*) found (allowed after a crash until the next run). */
  temps: string[];
  /** Images found, by node path, with their SHA-256. */
  images: Map<string, string>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Follows a symlink chain inside `root` (absolute targets are root-relative), to a node path. */
async function resolveInRoot(root: string, nodePath: string, hops = 0): Promise<string | null> {
  if (hops > 10) return null;
  const host = path.join(root, nodePath);
  let st;
  try {
    st = await lstat(host);
  } catch {
    return null;
  }
  if (!st.isSymbolicLink()) return nodePath;
  const target = await readlink(host);
  const next = target.startsWith("/")
    ? target
    : path.posix.join(path.posix.dirname(nodePath), target);
  return resolveInRoot(root, next, hops + 1);
}

/**
 * The invariants after any fault: every file in a store is a complete image (its SHA-256 is one
 * of `complete`, when given), no partial file under a visible name, every profile and runtime
 * link resolves to an image in the store, and temp files belong to dead processes only.
 */
export async function checkStore(
  root: string,
  complete?: ReadonlySet<string>,
  options: { allowTemps?: boolean } = {},
): Promise<StoreCheck> {
  const problems: string[] = [];
  const temps: string[] = [];
  const images = new Map<string, string>();
  const noteTemp = (nodePath: string, name: string) => {
    temps.push(nodePath);
    const pid = Number(/^\.extctl-[a-z]+-(\d+)-/.exec(name)?.[1]);
    if (Number.isFinite(pid) && pid > 0 && pidAlive(pid)) {
      problems.push(`${nodePath}: temp file of a live process ${pid} after the run ended`);
    }
    if (!options.allowTemps) problems.push(`${nodePath}: temp file left after a completed run`);
  };
  const list = async (nodeDir: string) =>
    readdir(path.join(root, nodeDir), { withFileTypes: true }).catch(() => []);

  for (const store of STORES) {
    for (const entry of await list(store)) {
      const nodePath = `${store}/${entry.name}`;
      // list's summary cache: not a temp, not an image, rebuilt whatever state it is in.
      if (entry.name === SUMMARY_CACHE_FILE && entry.isFile()) continue;
      if (entry.name.startsWith(".extctl-")) {
        noteTemp(nodePath, entry.name);
        continue;
      }
      if (entry.isDirectory()) {
        if (!PROFILES.includes(entry.name)) problems.push(`${nodePath}: unexpected directory`);
        continue;
      }
      if (!entry.isFile()) {
        problems.push(`${nodePath}: not a regular file`);
        continue;
      }
      if (!entry.name.endsWith(".raw")) {
        problems.push(`${nodePath}: a file that is not an image`);
        continue;
      }
      const digest = await sha256File(path.join(root, nodePath));
      images.set(nodePath, digest);
      if (complete && !complete.has(digest)) {
        const size = (await stat(path.join(root, nodePath))).size;
        problems.push(`${nodePath}: partial or unknown image (${size} bytes, sha256 ${digest})`);
      }
    }
    for (const profile of PROFILES) {
      const dir = `${store}/${profile}`;
      for (const entry of await list(dir)) {
        const nodePath = `${dir}/${entry.name}`;
        if (entry.name.startsWith(".extctl-")) {
          noteTemp(nodePath, entry.name);
          continue;
        }
        const end = await resolveInRoot(root, nodePath);
        if (!entry.isSymbolicLink()) problems.push(`${nodePath}: not a symlink`);
        else if (end === null || !images.has(end))
          problems.push(`${nodePath}: dangling link (to ${end ?? "nothing"})`);
      }
    }
  }
  for (const runtime of RUNTIMES) {
    for (const entry of await list(runtime)) {
      const nodePath = `${runtime}/${entry.name}`;
      if (entry.name.startsWith(".extctl-")) {
        noteTemp(nodePath, entry.name);
        continue;
      }
      const end = await resolveInRoot(root, nodePath);
      if (end === null || !images.has(end))
        problems.push(`${nodePath}: dangling runtime link (to ${end ?? "nothing"})`);
    }
  }
  return { problems, temps, images };
}

/** A random delay in [from, to) ms. */
export function randomBetween(from: number, to: number): number {
  return Math.floor(from + Math.random() * (to - from));
}

// ---- Generic kill -9 trials (crash-more.test.ts): any operation, any invariant ----

export interface CrashTrialPlan {
  /** e.g. "install oci:" (recorded as "crash: NAME"). */
  name: string;
  trials: number;
  /** Runs the operation once; killAfterMs set means SIGKILL its process group then. */
  run(i: number, killAfterMs?: number): Promise<KilledRun>;
  /** What is wrong right after the kill (temp files of dead processes are allowed here). */
  afterKill(i: number): Promise<string[]>;
  /** What is wrong after the untouched rerun, which must have succeeded. */
  afterRerun(i: number, rerun: KilledRun): Promise<string[]>;
  /** Puts things back for the next trial (also called after the calibration run). */
  reset?(i: number): Promise<void>;
  /** Kill window as fractions of an unkilled run's time (default 0.1 to 1.0). */
  window?: readonly [number, number];
}

export interface CrashTrialOutcome {
  survived: number;
  hitMidway: number;
  calmMs: number;
  /** One sentence per failed trial. */
  failures: string[];
}

/**
 * Calibrates on one unkilled run, then for each trial kills the operation at a random moment of
 * that run's span, checks the invariants, reruns it untouched and checks again; records counts.
 */
export async function runCrashTrials(plan: CrashTrialPlan): Promise<CrashTrialOutcome> {
  const calm = await plan.run(-1);
  if (calm.code !== 0 || calm.killed) {
    throw new Error(`${plan.name}: the calibration run failed: ${calm.stderr.trim()}`);
  }
  await plan.reset?.(-1);
  const [from, to] = plan.window ?? [0.1, 1.0];
  let survived = 0;
  let hitMidway = 0;
  const failures: string[] = [];
  for (let i = 0; i < plan.trials; i++) {
    const killAfterMs = randomBetween(calm.ms * from, calm.ms * to);
    const crashed = await plan.run(i, killAfterMs);
    const problems: string[] = [];
    if (crashed.hung) problems.push("the killed run hung");
    if (crashed.killed) hitMidway++;
    else if (crashed.code !== 0) problems.push(`the run failed unkilled: ${crashed.stderr.trim()}`);
    problems.push(
      ...(await plan.afterKill(i)).map((p) => `after the kill at ${killAfterMs} ms: ${p}`),
    );
    const rerun = await plan.run(i);
    if (rerun.code !== 0) problems.push(`the rerun failed: ${rerun.stderr.trim().slice(-1000)}`);
    else problems.push(...(await plan.afterRerun(i, rerun)).map((p) => `after the rerun: ${p}`));
    if (problems.length === 0) survived++;
    else failures.push(`trial ${i}: ${problems.join("; ")}`);
    await plan.reset?.(i);
  }
  await recordFaults({
    name: `crash: ${plan.name}`,
    kind: "crash",
    trials: plan.trials,
    survived,
    hitMidway,
    lost: plan.trials - survived,
  });
  return { survived, hitMidway, calmMs: calm.ms, failures };
}

/**
 * Problems in a directory extctl writes one file into (a build's output dir): each `.extctl-*`
 * temp must belong to a dead process (and, with `noTemps`, none may remain at all), and each
 * other entry must be one of `expected` with one of the `complete` digests.
 */
export async function checkOutputDir(
  dir: string,
  expected: ReadonlySet<string>,
  complete: ReadonlySet<string>,
  options: { noTemps?: boolean } = {},
): Promise<string[]> {
  const problems: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".extctl-")) {
      const pid = Number(/^\.extctl-[a-z]+-(\d+)-/.exec(entry.name)?.[1]);
      if (!(pid > 0)) problems.push(`${entry.name}: a temp name without a pid`);
      else if (pidAlive(pid)) problems.push(`${entry.name}: temp of a live process ${pid}`);
      if (options.noTemps) problems.push(`${entry.name}: temp left after a completed run`);
      continue;
    }
    if (!expected.has(entry.name)) {
      problems.push(`${entry.name}: unexpected entry`);
      continue;
    }
    const digest = await sha256File(path.join(dir, entry.name));
    if (!complete.has(digest)) {
      const size = (await stat(path.join(dir, entry.name))).size;
      problems.push(`${entry.name}: partial or unknown content (${size} bytes, sha256 ${digest})`);
    }
  }
  return problems;
}
