// A Kairos-like node booted for real: a throwaway overlay of a lane root (systemd 257 or 262),
// preseeded from outside with `extctl --root` as an installer would, booted with systemd-nspawn
// (systemd as PID 1), a scenario script run inside after multi-user.target, then powered off.
// The test reads what the scenario wrote and the node's journal. Needs root, in a private mount
// namespace (scripts/test.sh runs e2e tests in one). Recipe: spec/peers.md "A booted node".
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { runExtctl, type CliResult } from "./cli.js";

const CHECKOUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * How extctl gets onto the node. "checkout": /usr/bin/extctl is a two-line wrapper that runs this
 * checkout's bin/extctl.cjs with the node's own Node.js (the checkout and its node_modules are
 * bound in read-only). "single-file": dist/extctl (`npm run package`, issue 17 item 1) is copied
 * to /usr/bin/extctl and the node needs nothing else. Switching is this one line.
 */
const EXTCTL_ON_NODE: "checkout" | "single-file" = "single-file";

export type NodeLane = "257" | "262";

/** The cached lane root (scripts/lanes.sh build makes it), or undefined when it is not built. */
export function laneRoot(lane: NodeLane): string | undefined {
  const r = spawnSync("bash", [path.join(CHECKOUT, "scripts/lanes.sh"), "path", lane], {
    encoding: "utf8",
  });
  const dir = r.stdout.trim();
  return r.status === 0 && existsSync(path.join(dir, "usr/lib/systemd/systemd")) ? dir : undefined;
}

/** What one step of a scenario left: its exit code and output (see SCENARIO_PRELUDE's `step`). */
export interface StepResult {
  rc: number;
  out: string;
  err: string;
}

export interface BootResult {
  /** nspawn's exit code (0 after a clean poweroff) and whether the timeout killed it. */
  exitCode: number;
  timedOut: boolean;
  /** Wall time of the boot, start of nspawn to its exit. */
  ms: number;
  /** The container's console (systemd's status lines). */
  console: string;
  /** Every file the scenario wrote, by name. */
  files: Map<string, string>;
  /** True when the scenario script ran to its end. */
  finished: boolean;
  step(name: string): StepResult;
  json<T = unknown>(name: string): T;
  /** This boot's journal (all units, or one unit's), read with journalctl --directory. */
  journal(unit?: string): string;
  /** A summary to print when an assertion fails: steps, console tail, journal tail. */
  diagnostics(): string;
}

export interface BootOptions {
  /**
   * The node's kernel command line. A container has the host's /proc/cmdline; systemd reads
   * PID 1's argv instead inside a container, so these words are passed as init's arguments, and
   * extctl-boot.service gets them as $SYSTEMD_PROC_CMDLINE (issue 17 item 3).
   */
  cmdline: string[];
  /**
   * EFI variables the node's firmware "has", by efivarfs file name (NAME-GUID) and content (see
   * efiString). Given, /sys/firmware/efi/efivars in the node holds exactly these (read-only).
   */
  efivars?: Record<string, Buffer>;
  /** Shell run inside after multi-user.target, with SCENARIO_PRELUDE's functions. */
  scenario: string;
  timeoutMs?: number;
}

/**
 * Shell functions the scenario runs with. `step NAME CMD...` runs CMD and keeps NAME.rc,
 * NAME.out and NAME.err; `snapshot NAME` keeps extctl's and systemd's views of what is merged
 * (NAME.extctl-status is `extctl status --json`, NAME.sysext-status / NAME.confext-status are
 * `systemd-sysext|confext status --json=short` run with the unit's own environment, so with the
 * hierarchies its drop-in sets).
 */
const SCENARIO_PRELUDE = `
out=/var/tmp/extctl-node/results
mkdir -p "$out"
step() {
  name="$1"; shift
  rc=0
  "$@" >"$out/$name.out" 2>"$out/$name.err" || rc=$?
  echo "$rc" >"$out/$name.rc"
  return 0
}
unit_env() { systemctl show -P Environment "$1" 2>/dev/null; }
snapshot() {
  step "$1.extctl-status" extctl status --json
  step "$1.sysext-status" env $(unit_env systemd-sysext.service) systemd-sysext status --json=short
  step "$1.confext-status" env $(unit_env systemd-confext.service) systemd-confext status --json=short
  step "$1.links" sh -c 'ls -l /run/extensions /run/confexts /run/cos 2>&1; true'
}
step boot.multi-user systemctl is-active multi-user.target
step boot.units systemctl show -p ActiveState -p Result -p ExecMainStatus extctl-boot.service systemd-sysext.service systemd-confext.service
snapshot boot
`;

const SCENARIO_UNIT = `[Unit]
Description=extctl booted-node test scenario
After=multi-user.target

[Service]
Type=oneshot
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Environment=NO_COLOR=1
ExecStart=/bin/sh -c '. /usr/local/lib/extctl-node/prelude.sh; . /usr/local/lib/extctl-node/scenario.sh; echo done >"$out/finished"'
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
`;

export interface UnitOptions {
  /** The image policy the drop-ins carry: any (bare images merge) or the trusted one. */
  policy: "any" | "trusted";
}

export class BootedNode {
  /** Workarounds the harness applied for features not in this checkout yet (for diagnostics). */
  /** How extctl got onto the node (EXTCTL_ON_NODE). */
  readonly extctlOnNode = EXTCTL_ON_NODE;
  private boots = 0;

  private constructor(
    readonly lane: NodeLane,
    /** Host path of the node's root (an overlay over the lane root). */
    readonly root: string,
    private readonly work: string,
  ) {}

  /** A fresh overlay of the lane root, removed when the test ends. */
  static async create(t: TestContext, lane: NodeLane): Promise<BootedNode> {
    const lower = laneRoot(lane);
    if (!lower) throw new Error(`lane ${lane} is not built: bash scripts/lanes.sh build ${lane}`);
    const work = await mkdtemp(path.join(tmpdir(), `extctl-node-${lane}-`));
    const sh = (script: string) => spawnSync("sh", ["-ec", script, "sh", work, lower]);
    const mounted = sh(
      `mount -t tmpfs -o mode=0755 extctl-node "$1"
       mkdir "$1/upper" "$1/work" "$1/root" "$1/images"
       mount -t overlay extctl-node -o "lowerdir=$2,upperdir=$1/upper,workdir=$1/work" "$1/root"`,
    );
    if (mounted.status !== 0) throw new Error(`overlay: ${mounted.stderr.toString()}`);
    t.after(async () => {
      spawnSync("umount", ["-R", "-l", work]);
      await rm(work, { recursive: true, force: true });
    });
    const node = new BootedNode(lane, path.join(work, "root"), work);
    await node.prepare();
    return node;
  }

  /** Host path of a node path. */
  host(nodePath: string): string {
    return path.join(this.root, nodePath);
  }

  /** A scratch directory on the host for images and keys (outside the node). */
  get scratch(): string {
    return path.join(this.work, "images");
  }

  /** Runs the host's extctl on the node's root, as an installer would (`--root ROOT ...`). */
  extctl(args: readonly string[]): Promise<CliResult> {
    return runExtctl(["--root", this.root, ...args]);
  }

  /** Like extctl() but throws when it fails. */
  async extctlOk(args: readonly string[]): Promise<string> {
    const r = await this.extctl(args);
    if (r.code !== 0) throw new Error(`extctl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  /**
   * `extctl systemd install` for the policy, and systemd-sysext.service and
   * systemd-confext.service enabled (Debian leaves them disabled; a Kairos image enables them).
   */
  async installUnits(options: UnitOptions): Promise<void> {
    await this.extctlOk([
      "systemd",
      "install",
      options.policy === "trusted" ? "--trusted" : "--policy=any",
    ]);
    // `systemd install` enables both services itself, as kairos-init does (issue 17 item 2).
    const units = ["systemd-sysext.service", "systemd-confext.service"];
    const enabled = spawnSync("systemctl", [`--root=${this.root}`, "is-enabled", ...units], {
      encoding: "utf8",
    });
    const count = enabled.stdout.split("\n").filter((l) => l.trim() === "enabled").length;
    if (count < units.length)
      throw new Error(
        `extctl systemd install left ${units.join(", ")} not all enabled: ${enabled.stdout}`,
      );
  }

  /** Boots the node once, runs the scenario, and returns what it found. */
  async boot(options: BootOptions): Promise<BootResult> {
    this.boots += 1;
    const resultsHost = this.host("/var/tmp/extctl-node/results");
    await rm(resultsHost, { recursive: true, force: true });
    await writeFile(this.host("/usr/local/lib/extctl-node/scenario.sh"), options.scenario);
    await this.writeCmdlineDropIn(options.cmdline);

    const efi: string[] = [];
    if (options.efivars) {
      const dir = path.join(this.work, `efivars-${this.boots}`);
      await mkdir(dir);
      for (const [name, data] of Object.entries(options.efivars))
        await writeFile(path.join(dir, name), data);
      // The host has no /sys/firmware/efi: a tmpfs over /sys/firmware gives the bind a place.
      efi.push("--tmpfs=/sys/firmware:mode=0755", `--bind-ro=${dir}:/sys/firmware/efi/efivars`);
    }
    const nspawnArgs = (loops: string[]) => [
      "-q",
      "-D",
      this.root,
      "-b",
      `--machine=extctl-node-${process.pid}-${path.basename(this.work).slice(-6)}`,
      "--register=no",
      "--keep-unit",
      "--capability=all",
      "--bind=/dev/loop-control",
      ...loops.map((l) => `--bind=${l}`),
      "--property=DeviceAllow=block-loop rwm",
      "--property=DeviceAllow=/dev/loop-control rwm",
      ...this.checkoutBinds(),
      ...efi,
      ...options.cmdline,
    ];
    const env = { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" };
    const timeout = options.timeoutMs ?? 120_000;
    const started = Date.now();
    let run = await runWithTimeout("systemd-nspawn", nspawnArgs(await loopDevices()), timeout, env);
    // Other tests on this machine create and remove loop devices: one that went away between
    // listing and binding stops nspawn before the node starts. Once more with a fresh list.
    if (
      run.code !== 0 &&
      !run.timedOut &&
      /\/dev\/loop\d/.test(run.output) &&
      !existsSync(resultsHost)
    )
      run = await runWithTimeout("systemd-nspawn", nspawnArgs(await loopDevices()), timeout, env);
    const ms = Date.now() - started;
    const files = await readResults(resultsHost);
    const journalDir = this.host("/var/log/journal");
    // Each node's journal starts empty, so its Nth boot is journalctl's boot N.
    const boots = this.boots;
    const journal = (unit?: string) =>
      spawnSync(
        "journalctl",
        [
          `--directory=${journalDir}`,
          "--no-pager",
          `--boot=${boots}`,
          "-o",
          "short-monotonic",
          ...(unit ? ["-u", unit] : []),
        ],
        { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
      ).stdout;
    const step = (name: string): StepResult => {
      const rc = files.get(`${name}.rc`);
      if (rc === undefined) throw new Error(`the scenario did not run step ${name}`);
      return {
        rc: Number(rc.trim()),
        out: files.get(`${name}.out`) ?? "",
        err: files.get(`${name}.err`) ?? "",
      };
    };
    const lane = this.lane;
    return {
      exitCode: run.code,
      timedOut: run.timedOut,
      ms,
      console: run.output,
      files,
      finished: files.get("finished")?.trim() === "done",
      step,
      json<T>(name: string): T {
        const s = step(name);
        try {
          return JSON.parse(s.out) as T;
        } catch {
          throw new Error(`step ${name} printed no JSON (rc ${s.rc}): ${s.out}${s.err}`);
        }
      },
      journal,
      diagnostics() {
        const steps = [...files.keys()]
          .filter((f) => f.endsWith(".rc"))
          .map((f) => {
            const name = f.slice(0, -3);
            const s = step(name);
            return `-- ${name}: rc ${s.rc}\n${s.out.slice(0, 1500)}${s.err.slice(0, 1500)}`;
          });
        return [
          `boot ${boots} of lane ${lane}: nspawn exit ${run.code}${run.timedOut ? " (timed out)" : ""} after ${ms} ms`,
          ...steps,
          "-- console (tail)",
          run.output.split("\n").slice(-30).join("\n"),
          ...["extctl-boot.service", "systemd-sysext.service", "systemd-confext.service"].map(
            (unit) => `-- journal of ${unit}\n${journal(unit).split("\n").slice(-60).join("\n")}`,
          ),
          "-- journal (tail)",
          journal().split("\n").slice(-40).join("\n"),
        ].join("\n");
      },
    };
  }

  /** The overlay's one-time setup: machine id, persistent journal, extctl, the scenario unit. */
  private async prepare(): Promise<void> {
    await writeFile(this.host("/etc/machine-id"), randomBytes(16).toString("hex") + "\n");
    await mkdir(this.host("/var/log/journal"), { recursive: true });
    await mkdir(this.host("/usr/local/lib/extctl-node"), { recursive: true });
    await mkdir(this.scratch, { recursive: true });
    await writeFile(this.host("/usr/local/lib/extctl-node/prelude.sh"), SCENARIO_PRELUDE);
    const unitDir = this.host("/etc/systemd/system");
    await writeFile(path.join(unitDir, "extctl-node-scenario.service"), SCENARIO_UNIT);
    await mkdir(path.join(unitDir, "multi-user.target.wants"), { recursive: true });
    await rm(path.join(unitDir, "multi-user.target.wants/extctl-node-scenario.service"), {
      force: true,
    });
    await symlinkRelative(
      "../extctl-node-scenario.service",
      path.join(unitDir, "multi-user.target.wants/extctl-node-scenario.service"),
    );
    // Units a Debian root starts that a node under test does not need (and that wait for
    // things a container lacks).
    for (const unit of ["systemd-networkd-wait-online.service", "apt-daily.timer"])
      spawnSync("systemctl", [`--root=${this.root}`, "mask", unit], { stdio: "ignore" });
    const extctl = this.host("/usr/bin/extctl");
    if (EXTCTL_ON_NODE === "single-file") {
      await copyFile(path.join(CHECKOUT, "dist/extctl"), extctl);
      // A Kairos node has no Node.js: take the lane's away so nothing can lean on it.
      for (const bin of ["/usr/bin/node", "/usr/bin/nodejs"])
        await rm(this.host(bin), { force: true });
    } else {
      await writeFile(extctl, `#!/bin/sh\nexec node ${CHECKOUT}/bin/extctl.cjs "$@"\n`);
    }
    await chmod(extctl, 0o755);
  }

  /** The checkout (and a node_modules it links to elsewhere), read-only, in checkout mode. */
  private checkoutBinds(): string[] {
    if (EXTCTL_ON_NODE !== "checkout") return [];
    const binds = [`--bind-ro=${CHECKOUT}`];
    const modules = spawnSync("readlink", ["-f", path.join(CHECKOUT, "node_modules")], {
      encoding: "utf8",
    }).stdout.trim();
    if (modules && !modules.startsWith(CHECKOUT + "/")) binds.push(`--bind-ro=${modules}`);
    return binds;
  }

  /**
   * extctl-boot.service's view of the kernel cmdline: $SYSTEMD_PROC_CMDLINE (issue 17 item 3).
   */
  private async writeCmdlineDropIn(cmdline: string[]): Promise<void> {
    const dir = this.host("/etc/systemd/system/extctl-boot.service.d");
    await mkdir(dir, { recursive: true });
    const lines = ["[Service]", `Environment="SYSTEMD_PROC_CMDLINE=${cmdline.join(" ")}"`];
    await writeFile(path.join(dir, "50-extctl-node-test-cmdline.conf"), lines.join("\n") + "\n");
  }
}

/** An efivarfs file holding a string: a 4-byte attribute word, then UTF-16LE with a NUL. */
export function efiString(text: string): Buffer {
  // Non-volatile, boot-service and runtime access, as systemd-boot sets its Loader* variables.
  return Buffer.concat([Buffer.from([0x07, 0, 0, 0]), Buffer.from(text + "\0", "utf16le")]);
}

/** Whether the built extctl knows $SYSTEMD_PROC_CMDLINE (issue 17 item 3). */
async function symlinkRelative(target: string, at: string): Promise<void> {
  const { symlink } = await import("node:fs/promises");
  await symlink(target, at);
}

/**
 * Host loop devices to bind into the node. systemd-sysext asks /dev/loop-control for a free
 * device and opens /dev/loopN, which exists in the container only if bound, so a range is made
 * to exist first (opening a node creates the device: CONFIG_BLOCK_LEGACY_AUTOLOAD) and bound.
 */
async function loopDevices(count = 16): Promise<string[]> {
  const found: string[] = [];
  for (let i = 0; i < count; i++) {
    const dev = `/dev/loop${i}`;
    if (!existsSync(dev)) spawnSync("mknod", [dev, "b", "7", String(i)]);
    spawnSync("sh", ["-c", `exec 3<"${dev}"`], { stdio: "ignore" });
    if (existsSync(dev)) found.push(dev);
  }
  return found;
}

async function readResults(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return files;
  }
  for (const name of names) files.set(name, await readFile(path.join(dir, name), "utf8"));
  return files;
}

function runWithTimeout(
  command: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; timedOut: boolean; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let timedOut = false;
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    // SIGTERM makes nspawn stop the container; SIGKILL if it does not within 10 s.
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, timedOut, output });
    });
  });
}
