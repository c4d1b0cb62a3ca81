// Which merged images the kernel has caught with corrupted data: dm-verity marks its target `C`
// (instead of `V`) in the device's status after the first block whose hash disagrees, and the
// read fails with EIO. Admission checks only the signature and superblock, so an image altered
// after signing merges; this is how status and list learn of it afterwards.
import { readFile, readdir, realpath } from "node:fs/promises";
import path from "node:path";
import type { ProcessRunner } from "../../util/runner.js";

export interface CorruptedDevice {
  /** The device-mapper name (systemd names it after the root hash, or the partition). */
  device: string;
  /** The files behind the device's loop devices (image, or image and .verity sidecar). */
  files: string[];
}

/**
 * `dmsetup status --target verity` lines: `NAME: START LENGTH verity V|C ...`. Returns the names
 * whose state is C. Anything else (no devices, another target, a malformed line) is skipped.
 */
export function parseVerityStatus(text: string): string[] {
  const corrupted: string[] = [];
  for (const line of text.split("\n")) {
    // The name may itself hold ": " (any printable text); the fields after the last one are fixed.
    const m = /^(.*): \d+ \d+ verity (\S+)/.exec(line);
    if (m && m[2] === "C") corrupted.push(m[1] as string);
  }
  return corrupted;
}

/**
 * The verity devices in state C and the files behind them. `sys` is sysfs (a test's fake tree).
 * dmsetup missing or failing (no device-mapper, a container) means none found: this is a hint
 * on top of status, never a reason for it to fail.
 */
export async function corruptedVerityDevices(
  runner: ProcessRunner,
  sys = "/sys",
): Promise<CorruptedDevice[]> {
  // No dm device at all (most machines, every container): no need to ask dmsetup.
  const byName = await dmBlockDevices(sys);
  if (byName.size === 0) return [];
  let stdout: string;
  try {
    const r = await runner.run("dmsetup", ["status", "--target", "verity"], { timeoutMs: 10_000 });
    if (r.exitCode !== 0) return [];
    stdout = r.stdout;
  } catch {
    return [];
  }
  const names = parseVerityStatus(stdout);
  if (names.length === 0) return [];
  const result: CorruptedDevice[] = [];
  for (const device of names) {
    const block = byName.get(device);
    result.push({ device, files: block ? await backingFiles(sys, block) : [] });
  }
  return result;
}

/** dm-N by device-mapper name, from /sys/block/dm-N/dm/name. */
async function dmBlockDevices(sys: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  let entries: string[] = [];
  try {
    entries = await readdir(path.join(sys, "block"));
  } catch {
    return map;
  }
  for (const entry of entries.filter((e) => e.startsWith("dm-"))) {
    try {
      const name = (await readFile(path.join(sys, "block", entry, "dm/name"), "utf8")).trim();
      map.set(name, entry);
    } catch {
      // Gone meanwhile.
    }
  }
  return map;
}

/**
 * The files behind a dm device: each slave (loopN, or a partition loopNpM) leads to its loop
 * device's loop/backing_file. The kernel appends " (deleted)" to a file removed since.
 */
async function backingFiles(sys: string, dm: string): Promise<string[]> {
  const files = new Set<string>();
  let slaves: string[] = [];
  try {
    slaves = await readdir(path.join(sys, "block", dm, "slaves"));
  } catch {
    return [];
  }
  for (const slave of slaves) {
    try {
      // /sys/class/block/loop0p1 -> .../block/loop0/loop0p1: a partition's disk is its parent.
      let dev = await realpath(path.join(sys, "class/block", slave));
      try {
        await readFile(path.join(dev, "partition"), "utf8");
        dev = path.dirname(dev);
      } catch {
        // A whole device.
      }
      const file = (await readFile(path.join(dev, "loop/backing_file"), "utf8")).trim();
      if (file) files.add(file.replace(/ \(deleted\)$/, ""));
    } catch {
      // Not a loop device (a real disk), or gone meanwhile.
    }
  }
  return [...files];
}

/** The corrupted device backed by `file` (a host path, links resolved), if any. */
export async function corruptionOf(
  devices: readonly CorruptedDevice[],
  file: string,
): Promise<CorruptedDevice | undefined> {
  if (devices.length === 0) return undefined;
  const real = await realpath(file).catch(() => file);
  return devices.find((d) => d.files.includes(real) || d.files.includes(file));
}
