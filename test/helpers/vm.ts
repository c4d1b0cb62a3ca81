// A guest with its own kernel for the VM lane: a copy of a cached Debian root (scripts/vm.sh),
// preseeded from outside with `extctl --root`, made into an ext4 disk without mounting, booted
// by QEMU (direct kernel boot, or OVMF with Secure Boot through a signed systemd-boot and UKI),
// a scenario run inside whose results come back as a tar on a second raw disk. Recipe: spec/peers.md
// "A real kernel". Every qemu started here is killed by a watchdog and when the process exits.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { runExtctl, type CliResult } from "./cli.js";

const CHECKOUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const VM_CACHE = process.env.EXTCTL_VM_CACHE ?? "/var/cache/extctl-vm";
/** Per-run scratch (disks, root copies): outside the checkout, on disk rather than a tmpfs. */
const SCRATCH = process.env.EXTCTL_VM_SCRATCH ?? "/var/tmp";

export type VmLane = "257" | "262";

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const EFI_GLOBAL = "8be4df61-93ca-11d0-aa0d-00e098032b8c";
const EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

/** The cached guest root (scripts/vm.sh build makes it), or undefined when it is not built. */
export function guestRoot(lane: VmLane): string | undefined {
  const r = spawnSync("bash", [path.join(CHECKOUT, "scripts/vm.sh"), "path", lane], {
    encoding: "utf8",
  });
  const dir = r.stdout.trim();
  if (r.status !== 0 || !existsSync(path.join(dir, "usr/lib/systemd/systemd"))) return undefined;
  return existsSync(path.join(path.dirname(dir), ".extctl-vm-recipe")) ? dir : undefined;
}

/** The guest root's kernel and initramfs (the newest, should there be several). */
function kernelOf(root: string): { kernel: string; initrd: string; version: string } {
  const versions = readdirSync(path.join(root, "boot"))
    .filter((n) => n.startsWith("vmlinuz-"))
    .map((n) => n.slice("vmlinuz-".length))
    .sort();
  const version = versions.at(-1);
  if (!version) throw new Error(`${root}/boot has no vmlinuz-*`);
  const initrd = path.join(root, "boot", `initrd.img-${version}`);
  if (!existsSync(initrd)) throw new Error(`${root}/boot has no initrd.img-${version}`);
  return { kernel: path.join(root, "boot", `vmlinuz-${version}`), initrd, version };
}

function sh(cmd: string, args: readonly string[], what = cmd): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0)
    throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// QEMU with a watchdog

const running = new Set<ChildProcess>();
let exitHook = false;

/** Kills every qemu still running when this process goes (a failed test, ^C, a crash). */
function killAllOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  const killAll = () => {
    for (const child of running) child.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
}

export interface QemuRun {
  exitCode: number | null;
  timedOut: boolean;
  ms: number;
  console: string;
}

/** Runs qemu-system-x86_64 until it exits (the guest powered off) or `timeoutMs` passes. */
export async function runQemu(
  args: readonly string[],
  consoleFile: string,
  timeoutMs: number,
): Promise<QemuRun> {
  killAllOnExit();
  const started = Date.now();
  const child = spawn(
    "qemu-system-x86_64",
    [
      "-accel",
      "tcg,thread=multi",
      "-m",
      "2048",
      "-smp",
      "2",
      "-nic",
      "none",
      "-no-reboot",
      "-display",
      "none",
      "-monitor",
      "none",
      "-serial",
      `file:${consoleFile}`,
      ...args,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
  let timedOut = false;
  const watchdog = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on("error", () => resolve(null));
    child.on("close", (code) => resolve(code));
  });
  clearTimeout(watchdog);
  running.delete(child);
  let consoleText = "";
  try {
    consoleText = await readFile(consoleFile, "utf8");
  } catch {
    consoleText = "";
  }
  return {
    exitCode,
    timedOut,
    ms: Date.now() - started,
    console: consoleText + (stderr ? `\n-- qemu stderr\n${stderr}` : ""),
  };
}

// ---------------------------------------------------------------------------------------------
// Secure Boot keys and the enrolled variable store (made once, cached)

export interface SecureBootKeys {
  dir: string;
  /** The db key and certificate: they sign systemd-boot, the UKI and the images. */
  dbKey: string;
  dbCert: string;
  /** efivarfs payloads (attribute word + .auth) for db, KEK and PK. */
  vars: Record<"db" | "KEK" | "PK", string>;
}

function fileDigest(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/**
 * PK, KEK and db made with openssl and efitools, once (cached in VM_CACHE/secureboot/keys): the
 * images, systemd-boot and the UKI are signed with db, PK signs KEK, KEK signs db.
 */
export async function secureBootKeys(): Promise<SecureBootKeys> {
  const dir = path.join(VM_CACHE, "secureboot/keys");
  const keys: SecureBootKeys = {
    dir,
    dbKey: path.join(dir, "db.key"),
    dbCert: path.join(dir, "db.crt"),
    vars: {
      db: path.join(dir, "db.var"),
      KEK: path.join(dir, "KEK.var"),
      PK: path.join(dir, "PK.var"),
    },
  };
  if (existsSync(path.join(dir, "done"))) return keys;
  const tmp = `${dir}.new-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const guid = "e1f0c3a4-7c2e-4b4e-9e59-5d1f1ea1b2c3";
  for (const [name, signer] of [
    ["PK", "PK"],
    ["KEK", "PK"],
    ["db", "KEK"],
  ] as const) {
    const f = (ext: string, who: string = name) => path.join(tmp, `${who}.${ext}`);
    sh("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-sha256",
      "-days",
      "3650",
      "-subj",
      `/CN=extctl VM test ${name}`,
      "-keyout",
      f("key"),
      "-out",
      f("crt"),
    ]);
    sh("cert-to-efi-sig-list", ["-g", guid, f("crt"), f("esl")]);
    sh("sign-efi-sig-list", [
      "-k",
      f("key", signer),
      "-c",
      f("crt", signer),
      name,
      f("esl"),
      f("auth"),
    ]);
    // efivarfs takes the attribute word (NV, BS, RT, time-based authenticated) before the data.
    await writeFile(
      f("var"),
      Buffer.concat([Buffer.from([0x27, 0, 0, 0]), await readFile(f("auth"))]),
    );
  }
  await writeFile(path.join(tmp, "done"), "");
  await mkdir(path.dirname(dir), { recursive: true });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return keys;
}

/**
 * An OVMF variable store with the keys enrolled the firmware's own way: one boot in setup mode
 * (blank vars) in which the guest writes db, KEK, then PK through efivarfs. Cached beside the
 * keys, named after what it was made from (the keys and OVMF's files): copy it per boot.
 */
export async function enrolledVars(
  keys: SecureBootKeys,
  enrollRoot: string,
): Promise<{ vars: string; enrollMs: number }> {
  const digest = createHash("sha256")
    .update(`recipe=1\n${fileDigest(OVMF_CODE)}\n${fileDigest(OVMF_VARS)}\n`)
    .update(readFileSync(keys.vars.db))
    .update(readFileSync(keys.vars.KEK))
    .update(readFileSync(keys.vars.PK))
    .digest("hex")
    .slice(0, 16);
  const vars = path.join(VM_CACHE, "secureboot", `OVMF_VARS.enrolled-${digest}.fd`);
  if (existsSync(vars)) return { vars, enrollMs: 0 };
  const tmp = `${vars}.new-${process.pid}`;
  await copyFile(OVMF_VARS, tmp);
  const guest = await VmGuest.fromRoot(enrollRoot, "enroll");
  try {
    await mkdir(guest.host("/usr/local/lib/extctl-vm/enroll"), { recursive: true });
    for (const name of ["db", "KEK", "PK"] as const)
      await copyFile(keys.vars[name], guest.host(`/usr/local/lib/extctl-vm/enroll/${name}.var`));
    const efivar = (name: string) =>
      `/sys/firmware/efi/efivars/${name}-${name === "db" ? EFI_IMAGE_SECURITY_DATABASE : EFI_GLOBAL}`;
    const scenario = ["db", "KEK", "PK"]
      .map(
        (name) =>
          `[ ! -e ${efivar(name)} ] || chattr -i ${efivar(name)}\n` +
          `step enroll.${name} sh -c 'cat /usr/local/lib/extctl-vm/enroll/${name}.var > ${efivar(name)}'`,
      )
      .join("\n");
    // What the firmware offers before and after, for the diagnostics of a failed enrolment.
    const look =
      "step enroll.efivars-before ls /sys/firmware/efi/efivars\n" +
      "step enroll.dmesg sh -c 'dmesg | grep -i -E \"efi|secure|smm\"'\n";
    await guest.writeScenario(
      `${look}${scenario}\nstep enroll.setup-mode od -An -tu1 /sys/firmware/efi/efivars/SetupMode-${EFI_GLOBAL}\nstep enroll.efivars-after ls /sys/firmware/efi/efivars\n`,
    );
    const boot = await guest.boot({ mode: "efi-direct", vars: tmp, timeoutMs: 40 * 60_000 });
    if (!boot.finished) throw new Error(`the enrolling boot did not finish: ${boot.diagnostics()}`);
    for (const name of ["db", "KEK", "PK"])
      if (boot.step(`enroll.${name}`).rc !== 0)
        throw new Error(`enrolling ${name} failed: ${boot.diagnostics()}`);
    const setupMode = boot.step("enroll.setup-mode").out.trim().split(/\s+/).at(-1);
    if (setupMode !== "0")
      throw new Error(`SetupMode is ${setupMode} after enrolling PK: ${boot.diagnostics()}`);
    await rename(tmp, vars);
    return { vars, enrollMs: boot.ms };
  } finally {
    await guest.dispose();
    await rm(tmp, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The guest

/**
 * Shell functions the scenario runs with. `step NAME CMD...` keeps NAME.rc, NAME.out, NAME.err;
 * `snapshot NAME` keeps `extctl status --json` and systemd-sysext's view (with the unit's own
 * environment, so its hierarchies) and the verity devices.
 */
const PRELUDE = `
out=/run/extctl-vm/results
mkdir -p "$out"
step() {
  name="$1"; shift
  rc=0
  "$@" >"$out/$name.out" 2>"$out/$name.err" || rc=$?
  echo "$rc" >"$out/$name.rc"
  return 0
}
unit_env() { systemctl show -P Environment "$1" 2>/dev/null; }
sysext() { env $(unit_env systemd-sysext.service) systemd-sysext "$@"; }
verity_status() {
  for d in $(dmsetup ls --target verity 2>/dev/null | cut -f1); do
    echo "== $d"; veritysetup status "$d"
  done
}
snapshot() {
  step "$1.extctl-status" extctl status --json
  step "$1.sysext-status" sysext status --json=short
  step "$1.dm" dmsetup status --target verity
  step "$1.veritysetup" verity_status
}
step boot.multi-user systemctl is-active multi-user.target
step boot.units systemctl show -p ActiveState -p Result -p ExecMainStatus -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic extctl-boot.service systemd-sysext.service
step boot.journal journalctl -b -o cat -u extctl-boot.service
step boot.cmdline cat /proc/cmdline
snapshot boot
`;

const SCENARIO_UNIT = `[Unit]
Description=extctl VM lane scenario
After=multi-user.target

[Service]
Type=oneshot
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Environment=NO_COLOR=1
ExecStart=/bin/sh -c '. /usr/local/lib/extctl-vm/prelude.sh; . /usr/local/lib/extctl-vm/scenario.sh; journalctl -b --no-pager -o short-monotonic >"$out/journal.txt" 2>&1; echo done >"$out/finished"; tar -cf /dev/disk/by-id/virtio-results -C "$out" .; sync'
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
`;

/** Units a guest boots without: timers, logins, binfmt, the disk journal's flush. */
const UNNEEDED_UNITS = [
  "dpkg-db-backup.timer",
  "e2scrub_all.timer",
  "systemd-tmpfiles-clean.timer",
  "systemd-logind.service",
  "systemd-binfmt.service",
  "proc-sys-fs-binfmt_misc.automount",
  "systemd-pstore.service",
  "modprobe@drm.service",
  "systemd-journal-flush.service",
  "remote-fs.target",
];

export interface StepResult {
  rc: number;
  out: string;
  err: string;
}

export interface VmBoot {
  run: QemuRun;
  files: Map<string, string>;
  finished: boolean;
  ms: number;
  step(name: string): StepResult;
  json<T = unknown>(name: string): T;
  diagnostics(): string;
}

export type BootMode =
  /** SeaBIOS, the kernel and initramfs handed over by QEMU. */
  | "direct"
  /** OVMF with Secure Boot code, the kernel handed over by QEMU (only for the enrolling boot). */
  | "efi-direct"
  /** OVMF with Secure Boot on: the ESP's signed systemd-boot, its active.conf, a signed UKI. */
  | "secureboot";

export interface BootOptions {
  mode: BootMode;
  /** The variable store (efi-direct, secureboot): used as is, so pass a copy. */
  vars?: string;
  /** The ESP disk (secureboot). */
  esp?: string;
  timeoutMs?: number;
}

export class VmGuest {
  private boots = 0;
  private disk: string | undefined;
  readonly kernel: { kernel: string; initrd: string; version: string };

  private constructor(
    /** Host path of the guest's root tree (a copy of the cached one). */
    readonly root: string,
    /** Scratch directory for disks, images and keys. */
    readonly work: string,
  ) {
    this.kernel = kernelOf(root);
  }

  /** A copy of the lane's cached root with the one file and the scenario unit in it. */
  static async create(t: TestContext, lane: VmLane): Promise<VmGuest> {
    const cached = guestRoot(lane);
    if (!cached) throw new Error(`VM guest ${lane} is not built: bash scripts/vm.sh build ${lane}`);
    const guest = await VmGuest.fromRoot(cached, lane);
    t.after(() => guest.dispose());
    return guest;
  }

  static async fromRoot(cached: string, label: string): Promise<VmGuest> {
    await mkdir(SCRATCH, { recursive: true });
    const work = await mkdtemp(path.join(SCRATCH, `extctl-vm-${label}-`));
    const root = path.join(work, "root");
    // --reflink where the file system can; a plain copy (about 500 MB) otherwise.
    sh("cp", ["-a", "--reflink=auto", cached, root], "copying the guest root");
    const guest = new VmGuest(root, work);
    await guest.prepare();
    return guest;
  }

  async dispose(): Promise<void> {
    await rm(this.work, { recursive: true, force: true });
  }

  host(guestPath: string): string {
    return path.join(this.root, guestPath);
  }

  get scratch(): string {
    return path.join(this.work, "scratch");
  }

  /** The host's extctl on the guest's root, as an installer would (`--root ROOT ...`). */
  extctl(args: readonly string[]): Promise<CliResult> {
    return runExtctl(["--root", this.root, ...args]);
  }

  async extctlOk(args: readonly string[]): Promise<string> {
    const r = await this.extctl(args);
    if (r.code !== 0) throw new Error(`extctl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  async writeScenario(script: string): Promise<void> {
    await writeFile(this.host("/usr/local/lib/extctl-vm/scenario.sh"), script);
  }

  /**
   * The root disk, made from the tree without mounting anything. Made on the first boot; later
   * boots reuse it (what the guest changed persists), so the tree is not read again.
   */
  private makeDisk(): string {
    if (this.disk) return this.disk;
    const disk = path.join(this.work, "disk.img");
    sh("mkfs.ext4", ["-q", "-F", "-L", "COS_ACTIVE", "-d", this.root, disk, "2G"], "mkfs.ext4 -d");
    this.disk = disk;
    return disk;
  }

  /**
   * The ESP for Secure Boot: systemd-boot and a UKI made by the guest root's own ukify (in a
   * chroot of this copy), both signed with the db key by sbsign, and loader/entries/active.conf.
   */
  async makeEsp(kit: SecureBootKeys, cmdline: string): Promise<string> {
    const dir = path.join(this.work, "esp");
    await mkdir(path.join(dir, "EFI/BOOT"), { recursive: true });
    await mkdir(path.join(dir, "EFI/Linux"), { recursive: true });
    await mkdir(path.join(dir, "loader/entries"), { recursive: true });
    const { version } = this.kernel;
    sh(
      "chroot",
      [
        this.root,
        "ukify",
        "build",
        `--linux=/boot/vmlinuz-${version}`,
        `--initrd=/boot/initrd.img-${version}`,
        `--cmdline=${cmdline}`,
        "--output=/var/tmp/extctl.efi",
      ],
      "ukify build (in the guest root)",
    );
    const sign = (input: string, output: string) =>
      sh("sbsign", ["--key", kit.dbKey, "--cert", kit.dbCert, "--output", output, input], "sbsign");
    sign(this.host("/var/tmp/extctl.efi"), path.join(dir, "EFI/Linux/extctl.efi"));
    await rm(this.host("/var/tmp/extctl.efi"), { force: true });
    sign(
      this.host("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
      path.join(dir, "EFI/BOOT/BOOTX64.EFI"),
    );
    await writeFile(path.join(dir, "loader/loader.conf"), "default active.conf\ntimeout 0\n");
    await writeFile(
      path.join(dir, "loader/entries/active.conf"),
      "title extctl VM test (active)\nefi /EFI/Linux/extctl.efi\n",
    );
    // A GPT disk with one FAT partition (1 MiB in, 200 MiB): mkfs.vfat -C and mcopy, no mount.
    const part = path.join(this.work, "esp.part");
    await rm(part, { force: true });
    sh("mkfs.vfat", ["-C", "-n", "ESP", part, String(200 * 1024)], "mkfs.vfat");
    for (const entry of ["EFI", "loader"])
      sh("mcopy", ["-s", "-i", part, path.join(dir, entry), "::/"], "mcopy");
    const disk = path.join(this.work, "esp.img");
    sh("truncate", ["-s", `${202}M`, disk]);
    const sfdisk = spawnSync("sfdisk", ["-q", "--label", "gpt", disk], {
      input: "start=2048, size=409600, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n",
      encoding: "utf8",
    });
    if (sfdisk.status !== 0) throw new Error(`sfdisk: ${sfdisk.stderr}`);
    sh("dd", [`if=${part}`, `of=${disk}`, "bs=1M", "seek=1", "conv=notrunc", "status=none"]);
    await rm(part, { force: true });
    return disk;
  }

  /** Boots once, runs the scenario, returns what it left on the results disk. */
  async boot(options: BootOptions): Promise<VmBoot> {
    this.boots += 1;
    const n = this.boots;
    const disk = this.makeDisk();
    const results = path.join(this.work, `results-${n}.img`);
    sh("truncate", ["-s", "64M", results]);
    const consoleFile = path.join(this.work, `console-${n}.log`);
    const drives = (files: string[]) =>
      files.flatMap((f) => ["-drive", `file=${f},if=virtio,format=raw`]);
    // The results disk's serial names it in the guest (/dev/disk/by-id/virtio-results).
    const resultsDrive = [
      "-drive",
      `file=${results},if=none,id=results,format=raw`,
      "-device",
      "virtio-blk-pci,drive=results,serial=results",
    ];
    // no_timer_check: under emulation on a loaded machine the kernel's IO-APIC timer probe can
    // time out and panic ("IO-APIC + timer doesn't work"), seen on these machines.
    // systemd.show_status=error: no progress spinner redrawn on the emulated serial line.
    const append =
      "root=LABEL=COS_ACTIVE rw console=ttyS0 panic=5 no_timer_check systemd.show_status=error extctl.vm=";
    let args: string[];
    switch (options.mode) {
      case "direct":
        args = [
          "-kernel",
          this.kernel.kernel,
          "-initrd",
          this.kernel.initrd,
          "-append",
          `${append}direct`,
          ...drives([disk]),
          ...resultsDrive,
        ];
        break;
      case "efi-direct":
      case "secureboot": {
        if (!options.vars) throw new Error(`a ${options.mode} boot needs a variable store`);
        const firmware = [
          "-machine",
          "q35,smm=on",
          "-global",
          "driver=cfi.pflash01,property=secure,value=on",
          "-drive",
          `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
          "-drive",
          `if=pflash,format=raw,unit=1,file=${options.vars}`,
        ];
        if (options.mode === "efi-direct") {
          args = [
            ...firmware,
            "-kernel",
            this.kernel.kernel,
            "-initrd",
            this.kernel.initrd,
            "-append",
            `${append}enroll`,
            ...drives([disk]),
            ...resultsDrive,
          ];
        } else {
          if (!options.esp) throw new Error("a secureboot boot needs an ESP disk");
          args = [...firmware, ...drives([options.esp, disk]), ...resultsDrive];
        }
        break;
      }
    }
    const run = await runQemu(args, consoleFile, options.timeoutMs ?? 25 * 60_000);
    const files = readResults(results);
    const step = (name: string): StepResult => {
      const rc = files.get(`${name}.rc`);
      if (rc === undefined) throw new Error(`the scenario did not run step ${name}`);
      return {
        rc: Number(rc.trim()),
        out: files.get(`${name}.out`) ?? "",
        err: files.get(`${name}.err`) ?? "",
      };
    };
    return {
      run,
      files,
      finished: files.get("finished")?.trim() === "done",
      ms: run.ms,
      step,
      json<T>(name: string): T {
        const s = step(name);
        try {
          return JSON.parse(s.out) as T;
        } catch {
          throw new Error(`step ${name} printed no JSON (rc ${s.rc}): ${s.out}${s.err}`);
        }
      },
      diagnostics() {
        const steps = [...files.keys()]
          .filter((f) => f.endsWith(".rc"))
          .map((f) => {
            const name = f.slice(0, -3);
            const s = step(name);
            return `-- ${name}: rc ${s.rc}\n${s.out.slice(0, 1500)}${s.err.slice(0, 1500)}`;
          });
        return [
          `boot ${n} (${options.mode}): qemu exit ${run.exitCode}${run.timedOut ? " (timed out: killed)" : ""} after ${run.ms} ms`,
          ...steps,
          "-- console (tail)",
          run.console.split("\n").slice(-60).join("\n"),
          "-- journal (tail)",
          (files.get("journal.txt") ?? "").split("\n").slice(-80).join("\n"),
        ].join("\n");
      },
    };
  }

  /** The one file, the scenario unit and a fresh machine id. */
  private async prepare(): Promise<void> {
    await writeFile(this.host("/etc/machine-id"), randomBytes(16).toString("hex") + "\n");
    await mkdir(this.host("/var/log/journal"), { recursive: true });
    await mkdir(this.host("/usr/local/lib/extctl-vm"), { recursive: true });
    await mkdir(this.scratch, { recursive: true });
    await writeFile(this.host("/usr/local/lib/extctl-vm/prelude.sh"), PRELUDE);
    const unitDir = this.host("/etc/systemd/system");
    // Under emulation every unit costs seconds: what the scenario does not need is masked here,
    // per copy, so the cached root (and its recipe) stays as mmdebstrap made it.
    for (const unit of UNNEEDED_UNITS) {
      await rm(path.join(unitDir, unit), { force: true });
      await symlink("/dev/null", path.join(unitDir, unit));
    }
    await writeFile(path.join(unitDir, "extctl-vm-scenario.service"), SCENARIO_UNIT);
    await mkdir(path.join(unitDir, "multi-user.target.wants"), { recursive: true });
    await symlink(
      "../extctl-vm-scenario.service",
      path.join(unitDir, "multi-user.target.wants/extctl-vm-scenario.service"),
    );
    const oneFile = path.join(CHECKOUT, "dist/extctl");
    if (!existsSync(oneFile))
      throw new Error(`${oneFile} is missing: npm run package makes the one file`);
    await copyFile(oneFile, this.host("/usr/bin/extctl"));
    await chmod(this.host("/usr/bin/extctl"), 0o755);
  }
}

/** The files a scenario left: the results disk is a tar followed by zeros. */
function readResults(disk: string): Map<string, string> {
  const files = new Map<string, string>();
  const dir = `${disk}.d`;
  spawnSync("mkdir", ["-p", dir]);
  spawnSync("tar", ["-xf", disk, "-C", dir], { stdio: "ignore" });
  for (const name of safeList(dir)) {
    try {
      files.set(name, readFileSync(path.join(dir, name), "utf8"));
    } catch {
      // A directory or unreadable entry: not a result.
    }
  }
  return files;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
