// The boot-state matrix of spec/kairos.md section 3 step 1: every cmdline rule in its order, and
// every UKI case with EFI variable files (4-byte attribute header + UTF-16LE) made under a root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Root } from "../../../../src/util/root.js";
import {
  LOADER_DEVICE_PART_UUID,
  LOADER_ENTRY_SELECTED,
  decodeEfiString,
  decideBootState,
  detectBootState,
  stateFromCmdline,
  writeSentinels,
} from "../../../../src/domain/activate/boot-detect.js";
import { tempRoot } from "../../../helpers/tmp.js";

function efiString(text: string, nul = true): Buffer {
  return Buffer.concat([
    Buffer.from([0x06, 0, 0, 0]),
    Buffer.from(text + (nul ? "\0" : ""), "utf16le"),
  ]);
}

const CMDLINE_CASES: [string, string][] = [
  ["BOOT_IMAGE=/vmlinuz kairos.ram root=live", "active"],
  ["root=LABEL=COS_ACTIVE kairos.reset", "autoreset"],
  ["root=LABEL=COS_ACTIVE ro", "active"],
  ["root=LABEL=COS_PASSIVE ro", "passive"],
  ["root=LABEL=COS_RECOVERY ro", "recovery"],
  ["root=LABEL=COS_SYSTEM ro", "recovery"],
  ["quiet recovery-mode", "recovery"],
  ["root=live:LABEL=KAIROS rd.live.image", "livecd"],
  ["root=live:CDLABEL=KAIROS", "livecd"],
  ["ip=dhcp netboot", "livecd"],
  ["quiet splash", "unknown"],
  // Order matters: kairos.reset is checked before the labels, COS_ACTIVE before COS_PASSIVE.
  ["COS_PASSIVE COS_ACTIVE", "active"],
  ["COS_RECOVERY netboot", "recovery"],
];

for (const [cmdline, state] of CMDLINE_CASES) {
  test(`cmdline ${JSON.stringify(cmdline)} is ${state}`, () => {
    const d = decideBootState(cmdline, {});
    assert.equal(d.state, state);
    assert.equal(d.uki, false);
  });
}

test("stateFromCmdline returns undefined when no rule matches", () => {
  assert.equal(stateFromCmdline("console=ttyS0"), undefined);
});

test("decodeEfiString skips the attribute word and strips control characters", () => {
  assert.equal(decodeEfiString(efiString("active.conf")), "active.conf");
  assert.equal(decodeEfiString(efiString("a\tb\nc.conf")), "abc.conf");
  assert.equal(decodeEfiString(Buffer.from([7, 0, 0, 0])), "");
  assert.equal(decodeEfiString(Buffer.alloc(0)), "");
});

const UKI = "rd.immucore.uki console=ttyS0";
const PART = efiString("6a1d2e3c-0000-4000-8000-000000000001");

const UKI_CASES: [string, Buffer | undefined, Buffer | undefined, string][] = [
  ["no LoaderDevicePartUUID", undefined, efiString("active.conf"), "livecd"],
  ["an empty LoaderDevicePartUUID", efiString("", false), efiString("active.conf"), "livecd"],
  ["only a NUL in LoaderDevicePartUUID", efiString(""), efiString("active.conf"), "livecd"],
  ["entry active.conf", PART, efiString("active.conf"), "active"],
  ["entry passive.conf", PART, efiString("passive.conf"), "passive"],
  ["entry recovery.conf", PART, efiString("recovery.conf"), "recovery"],
  ["entry statereset.conf", PART, efiString("statereset.conf"), "autoreset"],
  ["entry without .conf", PART, efiString("active"), "unknown"],
  ["an unknown entry", PART, efiString("windows.conf"), "unknown"],
  ["entry with a version suffix", PART, efiString("active_1.conf"), "unknown"],
  ["no LoaderEntrySelected", PART, undefined, "unknown"],
];

for (const [what, part, entry, state] of UKI_CASES) {
  test(`UKI boot with ${what} is ${state} (EFI variable files under the root)`, async (t) => {
    const dir = await tempRoot(t);
    const efivars = path.join(dir, "sys/firmware/efi/efivars");
    await mkdir(efivars, { recursive: true });
    await mkdir(path.join(dir, "proc"));
    await writeFile(path.join(dir, "proc/cmdline"), UKI + "\n");
    if (part) await writeFile(path.join(efivars, LOADER_DEVICE_PART_UUID), part);
    if (entry) await writeFile(path.join(efivars, LOADER_ENTRY_SELECTED), entry);
    const d = await detectBootState(new Root(dir));
    assert.equal(d.state, state);
    assert.equal(d.uki, true);
  });
}

test("kairos.ram wins over a UKI boot", () => {
  const d = decideBootState(`${UKI} kairos.ram`, {});
  assert.equal(d.state, "active");
  assert.equal(d.uki, false);
});

test("a UKI boot ignores the cmdline labels", () => {
  const d = decideBootState(`${UKI} root=LABEL=COS_ACTIVE`, { devicePartUuid: PART });
  assert.equal(d.state, "unknown");
});

test("--cmdline and --efivars override the defaults", async (t) => {
  const dir = await tempRoot(t);
  const cmdline = path.join(dir, "my-cmdline");
  await writeFile(cmdline, UKI);
  const efivars = path.join(dir, "vars");
  await mkdir(efivars);
  await writeFile(path.join(efivars, LOADER_DEVICE_PART_UUID), PART);
  await writeFile(path.join(efivars, LOADER_ENTRY_SELECTED), efiString("passive.conf"));
  const d = await detectBootState(new Root(dir), { cmdlineFile: cmdline, efivarsDir: efivars });
  assert.equal(d.state, "passive");
});

test("$SYSTEMD_PROC_CMDLINE wins over ROOT/proc/cmdline, as in systemd", async (t) => {
  const dir = await tempRoot(t);
  await mkdir(path.join(dir, "proc"));
  await writeFile(path.join(dir, "proc/cmdline"), "root=LABEL=COS_ACTIVE\n");
  const env = { SYSTEMD_PROC_CMDLINE: "root=LABEL=COS_PASSIVE" };
  const d = await detectBootState(new Root(dir), { env });
  assert.equal(d.state, "passive");
  assert.match(d.reason, /SYSTEMD_PROC_CMDLINE/);
  // Without the variable the root's file counts again.
  assert.equal((await detectBootState(new Root(dir), { env: {} })).state, "active");
});

test("--cmdline wins over $SYSTEMD_PROC_CMDLINE", async (t) => {
  const dir = await tempRoot(t);
  const cmdline = path.join(dir, "my-cmdline");
  await writeFile(cmdline, "root=LABEL=COS_RECOVERY");
  const env = { SYSTEMD_PROC_CMDLINE: "root=LABEL=COS_PASSIVE" };
  const d = await detectBootState(new Root(dir), { cmdlineFile: cmdline, env });
  assert.equal(d.state, "recovery");
  assert.doesNotMatch(d.reason, /SYSTEMD_PROC_CMDLINE/);
});

test("$SYSTEMD_PROC_CMDLINE set but empty is an empty cmdline, not a fallback", async (t) => {
  const dir = await tempRoot(t);
  await mkdir(path.join(dir, "proc"));
  await writeFile(path.join(dir, "proc/cmdline"), "root=LABEL=COS_ACTIVE\n");
  const d = await detectBootState(new Root(dir), { env: { SYSTEMD_PROC_CMDLINE: "" } });
  assert.equal(d.state, "unknown");
});

test("a UKI boot named by $SYSTEMD_PROC_CMDLINE reads the root's EFI variables", async (t) => {
  const dir = await tempRoot(t);
  const efivars = path.join(dir, "sys/firmware/efi/efivars");
  await mkdir(efivars, { recursive: true });
  await writeFile(path.join(efivars, LOADER_DEVICE_PART_UUID), PART);
  await writeFile(path.join(efivars, LOADER_ENTRY_SELECTED), efiString("recovery.conf"));
  const d = await detectBootState(new Root(dir), { env: { SYSTEMD_PROC_CMDLINE: UKI } });
  assert.equal(d.state, "recovery");
  assert.equal(d.uki, true);
});

test("a missing --cmdline file is a clear error", async (t) => {
  const dir = await tempRoot(t);
  await assert.rejects(
    detectBootState(new Root(dir), { cmdlineFile: path.join(dir, "nope") }),
    (e: Error & { code?: string }) => e.code === "not-found" && /cmdline/.test(e.message),
  );
});

test("writeSentinels writes <state>_mode and uki_boot_mode once", async (t) => {
  const dir = await tempRoot(t);
  const root = new Root(dir);
  const detection = { state: "autoreset" as const, uki: true, reason: "" };
  assert.deepEqual(await writeSentinels(root, detection), [
    "/run/cos/autoreset_mode",
    "/run/cos/uki_boot_mode",
  ]);
  assert.deepEqual(await writeSentinels(root, detection), []);
  assert.deepEqual((await readdir(path.join(dir, "run/cos"))).sort(), [
    "autoreset_mode",
    "uki_boot_mode",
  ]);
});
