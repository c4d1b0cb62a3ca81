// dm-verity corruption seen by status and list: `dmsetup status` parsed, a dm device traced
// through sysfs (a fake tree here) to the image file behind its loop devices.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { tempDir } from "../../../helpers/tmp.js";
import {
  corruptedVerityDevices,
  corruptionOf,
  parseVerityStatus,
} from "../../../../src/domain/activate/verity-health.js";
import type { ProcessRunner, RunResult } from "../../../../src/util/runner.js";

class FakeDmsetup implements ProcessRunner {
  calls: string[][] = [];
  constructor(
    private readonly stdout: string,
    private readonly exitCode = 0,
  ) {}
  async run(command: string, args: readonly string[]): Promise<RunResult> {
    this.calls.push([command, ...args]);
    return {
      command: [command, ...args],
      exitCode: this.exitCode,
      signal: null,
      stdout: this.stdout,
      stderr: "",
    };
  }
}

const HASH = "a".repeat(64);

test("parseVerityStatus keeps the C devices, whatever their names hold", () => {
  const text = [
    `${HASH}-verity: 0 2048 verity V`,
    `loop3p1-verity: 0 4096 verity C`,
    `odd: name: 0 8 verity C`,
    `crypt: 0 8 crypt`,
    `No devices found`,
    ``,
  ].join("\n");
  assert.deepEqual(parseVerityStatus(text), ["loop3p1-verity", "odd: name"]);
});

/** A fake sysfs: dm-0 (V) over loop0p1 of loop0, dm-1 (C) over loop1p1/p2 of loop1, dm-2 over loop2 and loop3. */
async function fakeSys(dir: string): Promise<string> {
  const sys = path.join(dir, "sys");
  const loop = async (n: number, file: string, parts: number[]) => {
    const dev = path.join(sys, "devices/virtual/block", `loop${n}`);
    await mkdir(path.join(dev, "loop"), { recursive: true });
    await writeFile(path.join(dev, "loop/backing_file"), `${file}\n`);
    await mkdir(path.join(sys, "class/block"), { recursive: true });
    await symlink(dev, path.join(sys, "class/block", `loop${n}`));
    for (const p of parts) {
      await mkdir(path.join(dev, `loop${n}p${p}`), { recursive: true });
      await writeFile(path.join(dev, `loop${n}p${p}`, "partition"), `${p}\n`);
      await symlink(
        path.join(dev, `loop${n}p${p}`),
        path.join(sys, "class/block", `loop${n}p${p}`),
      );
    }
  };
  const dm = async (n: number, name: string, slaves: string[]) => {
    const dev = path.join(sys, "block", `dm-${n}`);
    await mkdir(path.join(dev, "dm"), { recursive: true });
    await mkdir(path.join(dev, "slaves"), { recursive: true });
    await writeFile(path.join(dev, "dm/name"), `${name}\n`);
    for (const s of slaves) await writeFile(path.join(dev, "slaves", s), "");
  };
  await loop(0, "/var/lib/kairos/extensions/good.sysext.raw", [1, 2]);
  await loop(1, "/var/lib/kairos/extensions/bad.sysext.raw (deleted)", [1, 2]);
  await loop(2, "/var/lib/kairos/extensions/bare.raw", []);
  await loop(3, "/var/lib/kairos/extensions/bare.raw.verity", []);
  await dm(0, `${HASH}-verity`, ["loop0p1", "loop0p2"]);
  await dm(1, "loop1p1-verity", ["loop1p1", "loop1p2"]);
  await dm(2, "bare-verity", ["loop2", "loop3"]);
  return sys;
}

test("a corrupted device leads to the image behind its loop device (DDI partitions and bare sidecars)", async (t) => {
  const sys = await fakeSys(await tempDir(t));
  const runner = new FakeDmsetup(
    [
      `${HASH}-verity: 0 2048 verity V`,
      "loop1p1-verity: 0 4096 verity C",
      "bare-verity: 0 8 verity C",
    ].join("\n"),
  );
  const found = await corruptedVerityDevices(runner, sys);
  assert.deepEqual(runner.calls, [["dmsetup", "status", "--target", "verity"]]);
  assert.deepEqual(found, [
    { device: "loop1p1-verity", files: ["/var/lib/kairos/extensions/bad.sysext.raw"] },
    {
      device: "bare-verity",
      files: ["/var/lib/kairos/extensions/bare.raw", "/var/lib/kairos/extensions/bare.raw.verity"],
    },
  ]);
  assert.equal(
    (await corruptionOf(found, "/var/lib/kairos/extensions/bad.sysext.raw"))?.device,
    "loop1p1-verity",
  );
  assert.equal(await corruptionOf(found, "/var/lib/kairos/extensions/good.sysext.raw"), undefined);
});

test("no dm device, no dmsetup run; dmsetup failing or missing finds nothing", async (t) => {
  const dir = await tempDir(t);
  const empty = path.join(dir, "empty-sys");
  await mkdir(path.join(empty, "block/loop0"), { recursive: true });
  const runner = new FakeDmsetup("x: 0 8 verity C");
  assert.deepEqual(await corruptedVerityDevices(runner, empty), []);
  assert.deepEqual(runner.calls, []);

  const sys = await fakeSys(dir);
  assert.deepEqual(await corruptedVerityDevices(new FakeDmsetup("", 1), sys), []);
  const missing: ProcessRunner = {
    run: () => Promise.reject(Object.assign(new Error("spawn dmsetup ENOENT"), { code: "ENOENT" })),
  };
  assert.deepEqual(await corruptedVerityDevices(missing, sys), []);
});

test("a C device whose dm node is gone is still reported, with no files", async (t) => {
  const sys = await fakeSys(await tempDir(t));
  const found = await corruptedVerityDevices(new FakeDmsetup("vanished: 0 8 verity C\n"), sys);
  assert.deepEqual(found, [{ device: "vanished", files: [] }]);
});
