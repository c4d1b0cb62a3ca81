// The VM lane (issue 27): extctl's one file on a guest with its own kernel, so real device-mapper
// and dm-verity, and real UEFI firmware with Secure Boot (QEMU, test/helpers/vm.ts). Per systemd
// version two boots of one disk: a direct kernel boot (the kernel refuses the root hash
// signature, systemd checks it against /etc/verity.d), then, after the first boot removed that
// file trust, OVMF with Secure Boot through a db-signed systemd-boot and UKI (the kernel checks
// signatures against the db certificates in its .platform keyring). What is checked: signed
// erofs and squashfs DDIs merged through a verified verity device; unsigned and foreign-signed
// images refused by extctl's boot and, linked past extctl, by systemd-sysext; a tampered image's
// read failing with EIO, reported by `status` and `list --verify`, `verify --full` exiting 15;
// enable/disable/remove --now live; the second boot keeping the store; UKI boot-state detection
// and trust from the firmware's db. The first boot's unit timestamps are extctl's cost at boot
// (bench/vm-boot.ts prints them). EXTCTL_VM_LANES=257 (say) picks versions, default 257 and 262.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmod, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { requirePeers } from "../helpers/peers.js";
import { makeSigningCert } from "../helpers/keys.js";
import {
  enrolledVars,
  guestRoot,
  secureBootKeys,
  VmGuest,
  type VmBoot,
  type VmLane,
} from "../helpers/vm.js";

const CHECKOUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const LANES = (process.env.EXTCTL_VM_LANES ?? "257,262")
  .split(",")
  .filter((l): l is VmLane => l === "257" || l === "262");

const PEERS = [
  "qemu-system-x86_64",
  "mkfs.ext4",
  "mkfs.vfat",
  "mcopy",
  "sfdisk",
  "sbsign",
  "cert-to-efi-sig-list",
  "sign-efi-sig-list",
  "openssl",
  "chroot",
];

function ready(t: TestContext, lane: VmLane): boolean {
  if (!requirePeers(t, PEERS, { root: true })) return false;
  if (guestRoot(lane)) return true;
  const message = `VM guest ${lane} is not built (bash scripts/vm.sh build ${lane})`;
  if (process.env.CI === "true") throw new Error(message);
  t.skip(message);
  return false;
}

/** The enrolled variable store, made once for all lanes (its enrolling boot runs beside them). */
let varsPromise: Promise<{ vars: string; enrollMs: number }> | undefined;
function enrolled(lane: VmLane): Promise<{ vars: string; enrollMs: number }> {
  varsPromise ??= secureBootKeys().then((keys) => enrolledVars(keys, guestRoot(lane) as string));
  return varsPromise;
}

const STORE = "/var/lib/kairos/extensions";
/** The signed images enabled at boot beside the unsigned and foreign ones: six in all. */
const SIGNED_AT_BOOT = ["extra", "sig-erofs", "sig-squash", "tamper"];
const MARKER = "extctl-vm-tamper-marker:";

interface Built {
  name: string;
  file: string;
}

async function build(
  guest: VmGuest,
  name: string,
  signer: { key: string; cert: string } | undefined,
  options: { format?: "erofs" | "squashfs"; files?: Record<string, string> } = {},
): Promise<Built> {
  const tree = path.join(guest.scratch, `tree-${name}`);
  const files = options.files ?? {
    [`usr/bin/hello-${name}`]: `#!/bin/sh\necho "hello from ${name}"\n`,
  };
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(tree, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
    await chmod(file, rel.includes("bin/") ? 0o755 : 0o644);
  }
  const args = ["build", "sysext", name, tree, "-o", guest.scratch];
  if (signer) args.push("--private-key", signer.key, "--certificate", signer.cert);
  if (options.format === "squashfs") args.push("--format", "squashfs");
  // Uncompressed, so that the marker's bytes are findable in the image (the tampered one).
  else args.push("--compress", "none");
  await guest.extctlOk(args);
  return { name, file: path.join(guest.scratch, `${name}.sysext.raw`) };
}

/** Flips one byte of the marker file's data in the image (after signing: the hash tree disagrees). */
async function tamper(file: string): Promise<void> {
  const data = await readFile(file);
  // The last copy of the marker: deep in the file's data, so the kernel meets the altered block
  // only when the file is read. Near the start it can share a read-ahead window with the
  // release file, and then the merge itself fails (seen: "data block 1 is corrupted").
  const at = data.lastIndexOf(Buffer.from(MARKER));
  assert.ok(at > 0, `the marker is not in ${file}`);
  const fd = await import("node:fs/promises").then((fs) => fs.open(file, "r+"));
  try {
    await fd.write(Buffer.from([data[at + 7]! ^ 0xff]), 0, 1, at + 7);
  } finally {
    await fd.close();
  }
}

const SCENARIO = `
case "$(cat /proc/cmdline)" in
*extctl.vm=direct*)
  for n in sig-erofs sig-squash extra; do step run.$n hello-$n; done
  # A tampered signed image: admitted (signature and superblock are fine), merged, and its
  # altered block fails when read; status, list --verify and verify --full must say so.
  step tamper.read cat /usr/lib/extctl-vm/tamper.dat
  step tamper.dm dmsetup status --target verity
  step tamper.kmsg sh -c 'dmesg | grep -i verity'
  step tamper.status extctl status --json
  step tamper.status-text extctl status
  step tamper.list extctl sysext list --verify --json
  step tamper.verify extctl verify --full ${STORE}/tamper.sysext.raw
  # Live changes.
  step live.enable extctl sysext enable late --active --now
  step live.run-late hello-late
  step live.enable-foreign extctl sysext enable late-foreign --active --now
  step live.disable extctl sysext disable sig-squash --active --now
  step live.run-squash-after hello-sig-squash
  step live.remove extctl sysext remove tamper --now
  snapshot live
  # Past extctl: linked by hand, systemd-sysext itself must refuse them.
  for n in unsigned foreign; do
    ln -s ${STORE}/$n.sysext.raw /run/extensions/$n.sysext.raw
    step past.$n.refresh sysext refresh --image-policy=root=signed+absent:usr=signed+absent
    step past.$n.status sysext status --json=short
    rm -f /run/extensions/$n.sysext.raw
  done
  step past.restore sysext refresh --image-policy=root=signed+absent:usr=signed+absent
  snapshot restored
  # The next boot (Secure Boot) must merge without the file trust.
  rm -f /etc/verity.d/*
  sync
  ;;
*extctl.vm=sb*)
  step sb.secureboot od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d0-aa0d-00e098032b8c
  step sb.platform keyctl show %:.platform
  step sb.entry od -An -c /sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
  step sb.verityd sh -c 'ls /run/verity.d; echo ==; ls /etc/verity.d 2>&1; true'
  for n in sig-erofs extra late; do step run.$n hello-$n; done
  # No file trust at all: only the kernel's keyring can admit the signatures now.
  rm -f /run/verity.d/* /etc/verity.d/*
  step sb.refresh env SYSTEMD_LOG_LEVEL=debug $(unit_env systemd-sysext.service) systemd-sysext refresh --image-policy=root=signed+absent:usr=signed+absent
  snapshot sb-refresh
  for n in sig-erofs extra late; do step sb-refresh.run.$n hello-$n; done
  ;;
esac
`;

interface SysextEntry {
  hierarchy: string;
  extensions: string[] | "none";
}

function sysextMerged(boot: VmBoot, step: string): string[] {
  const entries = boot.json<SysextEntry[]>(step);
  return [...new Set(entries.flatMap((e) => (Array.isArray(e.extensions) ? e.extensions : [])))]
    .filter(Boolean)
    .sort();
}

function assertStep(boot: VmBoot, name: string, rc = 0): string {
  const s = boot.step(name);
  assert.equal(s.rc, rc, `step ${name}: rc ${s.rc}: ${s.out}${s.err}\n${boot.diagnostics()}`);
  return s.out;
}

function assertFailed(boot: VmBoot, name: string): StepOut {
  const s = boot.step(name);
  assert.notEqual(s.rc, 0, `step ${name} should fail: ${s.out}${s.err}\n${boot.diagnostics()}`);
  return s;
}
type StepOut = { rc: number; out: string; err: string };

function assertBooted(boot: VmBoot): void {
  assert.equal(
    boot.run.timedOut,
    false,
    `the guest did not power off in time: ${boot.diagnostics()}`,
  );
  assert.ok(boot.finished, `the scenario did not finish: ${boot.diagnostics()}`);
  assert.equal(boot.step("boot.multi-user").out.trim(), "active", boot.diagnostics());
}

/** Count of verity devices veritysetup calls verified. */
function verifiedDevices(boot: VmBoot, step: string): number {
  return (boot.step(step).out.match(/status:\s+verified/g) ?? []).length;
}

interface UnitTimes {
  start: number;
  exit: number;
  result: string;
}

/** `systemctl show` of two units: blocks in the order asked, blank-line separated. */
function unitTimes(text: string): UnitTimes[] {
  return text
    .trim()
    .split(/\n\s*\n/)
    .map((block) => {
      const get = (key: string) => block.match(new RegExp(`^${key}=(.*)$`, "m"))?.[1] ?? "";
      return {
        start: Number(get("ExecMainStartTimestampMonotonic")),
        exit: Number(get("ExecMainExitTimestampMonotonic")),
        result: String(get("Result")),
      };
    });
}

interface ExtctlStatus {
  boot: { states: string[]; uki: boolean };
  kinds: {
    kind: string;
    mismatches: { name: string; problem: string; detail: string }[];
  }[];
}

// The lanes boot side by side: a boot mostly waits on emulation, and the enrolling boot runs
// beside them.
describe("VM lane", { concurrency: true }, () => {
  for (const lane of LANES) {
    test(`systemd ${lane}: real dm-verity and Secure Boot: admission, refusals, tampering, live changes, reboot`, async (t) => {
      if (!ready(t, lane)) return;
      const started = Date.now();
      const guest = await VmGuest.create(t, lane);
      const secure = await secureBootKeys();
      // The enrolling boot (once, cached) runs while this lane boots directly.
      const varsReady = enrolled(lane);
      varsReady.catch(() => undefined);
      const db = { key: secure.dbKey, cert: secure.dbCert };
      const foreign = makeSigningCert(guest.scratch, "foreign", {
        subject: "/CN=extctl VM foreign",
      });

      const images = [
        await build(guest, "sig-erofs", db),
        await build(guest, "sig-squash", db, { format: "squashfs" }),
        await build(guest, "extra", db),
        await build(guest, "tamper", db, {
          files: {
            "usr/bin/hello-tamper": "#!/bin/sh\necho tamper\n",
            "usr/lib/extctl-vm/tamper.dat": MARKER.repeat(8192),
          },
        }),
        await build(guest, "unsigned", undefined),
        await build(guest, "foreign", foreign),
      ];
      await tamper(images[3]!.file);
      const late = [await build(guest, "late", db), await build(guest, "late-foreign", foreign)];
      for (const image of [...images, ...late])
        await guest.extctlOk(["sysext", "install", `file://${image.file}`]);
      for (const image of images)
        await guest.extctlOk(["sysext", "enable", image.name, "--active"]);
      // The file trust a direct boot needs (systemd checks the signature in userspace).
      await mkdir(guest.host("/etc/verity.d"), { recursive: true });
      await copyFile(db.cert, guest.host("/etc/verity.d/extctl-vm-db.crt"));
      await chmod(guest.host("/etc/verity.d/extctl-vm-db.crt"), 0o644);
      await guest.extctlOk(["systemd", "install", "--trusted", "--extctl", "/usr/bin/extctl"]);
      await guest.writeScenario(SCENARIO);
      t.diagnostic(`preseeded in ${Date.now() - started} ms`);

      // ---- Boot 1: direct kernel boot.
      const direct = await guest.boot({ mode: "direct" });
      t.diagnostic(`direct boot: ${direct.ms} ms`);
      assertBooted(direct);
      const [bootUnit, sysextUnit] = unitTimes(direct.step("boot.units").out);
      assert.equal(bootUnit?.result, "success", direct.diagnostics());
      assert.equal(sysextUnit?.result, "success", direct.diagnostics());
      assert.deepEqual(
        sysextMerged(direct, "boot.sysext-status"),
        SIGNED_AT_BOOT,
        direct.diagnostics(),
      );
      const journal = direct.step("boot.journal").out;
      for (const refused of ["unsigned", "foreign"])
        assert.match(
          journal,
          new RegExp(`${refused}\\.sysext\\.raw`),
          `extctl-boot names ${refused}: ${journal}`,
        );
      assert.ok(
        verifiedDevices(direct, "boot.veritysetup") >= SIGNED_AT_BOOT.length,
        direct.diagnostics(),
      );
      for (const n of ["sig-erofs", "sig-squash", "extra"])
        assert.match(assertStep(direct, `run.${n}`), new RegExp(`hello from ${n}`));

      // Cost at boot: the bench row.
      const extctlUs = bootUnit.exit - bootUnit.start;
      const sysextUs = sysextUnit.exit - sysextUnit.start;
      const ratio = extctlUs / sysextUs;
      t.diagnostic(
        `extctl-boot.service ${(extctlUs / 1000).toFixed(0)} ms, systemd-sysext.service ${(sysextUs / 1000).toFixed(0)} ms: ${ratio.toFixed(2)}x`,
      );
      await mkdir(path.join(CHECKOUT, "bench/results"), { recursive: true });
      await writeFile(
        path.join(CHECKOUT, `bench/results/vm-boot-${lane}.json`),
        JSON.stringify(
          {
            lane,
            kernel: guest.kernel.version,
            images: images.length,
            extctlBootUs: extctlUs,
            sysextUs,
            ratio,
            directBootMs: direct.ms,
            at: new Date().toISOString(),
          },
          null,
          2,
        ) + "\n",
      );

      // The tampered image.
      const read = assertFailed(direct, "tamper.read");
      assert.match(read.err, /Input\/output error/, direct.diagnostics());
      assert.match(direct.step("tamper.dm").out, /verity C/, direct.diagnostics());
      assertStep(direct, "tamper.verify", 15);
      // Live changes.
      assertStep(direct, "live.enable");
      assert.match(assertStep(direct, "live.run-late"), /hello from late/);
      assertFailed(direct, "live.enable-foreign");
      assertStep(direct, "live.disable");
      assertFailed(direct, "live.run-squash-after");
      assertStep(direct, "live.remove");
      assert.deepEqual(
        sysextMerged(direct, "live.sysext-status"),
        ["extra", "late", "sig-erofs"],
        direct.diagnostics(),
      );

      // systemd-sysext itself refuses what extctl would not link.
      for (const n of ["unsigned", "foreign"]) {
        assert.ok(
          !sysextMerged(direct, `past.${n}.status`).includes(n),
          `systemd-sysext merged ${n}: ${direct.diagnostics()}`,
        );
      }
      assert.deepEqual(
        sysextMerged(direct, "restored.sysext-status"),
        ["extra", "late", "sig-erofs"],
        direct.diagnostics(),
      );

      // ---- Boot 2: Secure Boot, the same disk (the store must persist).
      const { vars: enrolledStore, enrollMs } = await varsReady;
      if (enrollMs) t.diagnostic(`enrolling boot (once, now cached): ${enrollMs} ms`);
      const vars = path.join(guest.work, "vars.fd");
      await copyFile(enrolledStore, vars);
      const esp = await guest.makeEsp(
        secure,
        "root=LABEL=COS_ACTIVE rw console=ttyS0 panic=5 no_timer_check systemd.show_status=error rd.immucore.uki extctl.vm=sb",
      );
      const sb = await guest.boot({ mode: "secureboot", vars, esp });
      t.diagnostic(`Secure Boot UKI boot: ${sb.ms} ms`);
      assertBooted(sb);
      assert.equal(
        assertStep(sb, "sb.secureboot").trim().split(/\s+/).at(-1),
        "1",
        "SecureBoot is on",
      );
      assert.match(assertStep(sb, "sb.platform"), /extctl VM test db/, sb.diagnostics());
      const status = sb.json<ExtctlStatus>("boot.extctl-status");
      assert.deepEqual(status.boot.states, ["active"], sb.diagnostics());
      assert.equal(status.boot.uki, true, sb.diagnostics());
      assert.match(
        sb.step("boot.journal").out,
        /LoaderEntrySelected is "active\.conf"/,
        sb.diagnostics(),
      );
      // Trust from the firmware: db only by default (PK and KEK only when asked for).
      const [runVerity] = assertStep(sb, "sb.verityd").split("==");
      const imported = runVerity!
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
      assert.ok(
        imported.some((f) => /^DB\d+\.crt$/i.test(f)),
        sb.diagnostics(),
      );
      assert.deepEqual(
        imported.filter((f) => /^(PK|KEK)\d+\.crt$/i.test(f)),
        [],
        `import-efi is db-only by default: ${imported.join(" ")}`,
      );
      // The store kept the first boot's changes.
      assert.deepEqual(
        sysextMerged(sb, "boot.sysext-status"),
        ["extra", "late", "sig-erofs"],
        sb.diagnostics(),
      );
      for (const n of ["sig-erofs", "extra", "late"]) assertStep(sb, `run.${n}`);
      // With no file trust at all, the kernel's .platform keyring admits the signatures.
      assertStep(sb, "sb.refresh");
      assert.deepEqual(
        sysextMerged(sb, "sb-refresh.sysext-status"),
        ["extra", "late", "sig-erofs"],
        sb.diagnostics(),
      );
      assert.ok(verifiedDevices(sb, "sb-refresh.veritysetup") >= 3, sb.diagnostics());
      for (const n of ["sig-erofs", "extra", "late"]) assertStep(sb, `sb-refresh.run.${n}`);
      // status and list --verify name the image the kernel flagged (first boot's readings).
      const tamperStatus = direct.json<ExtctlStatus>("tamper.status");
      const sysext = tamperStatus.kinds.find((k) => k.kind === "sysext");
      const corrupt = sysext?.mismatches.find((m) => m.problem === "verity-corrupted");
      assert.equal(corrupt?.name, "tamper.sysext.raw", direct.diagnostics());
      assert.match(corrupt.detail, /verify --full/);
      assert.match(direct.step("tamper.status-text").out, /tamper\.sysext\.raw/);
      const listed = direct.json<{ images: { name: string; corrupted?: boolean }[] }>(
        "tamper.list",
      );
      assert.equal(
        listed.images.find((i) => i.name === "tamper.sysext.raw")?.corrupted,
        true,
        direct.diagnostics(),
      );
      assert.notEqual(
        listed.images.find((i) => i.name === "sig-erofs.sysext.raw")?.corrupted,
        true,
      );

      t.diagnostic(`lane ${lane}: ${Date.now() - started} ms in all`);
    });
  }
});
