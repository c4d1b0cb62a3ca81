import { test } from "node:test";
import assert from "node:assert/strict";
import { pickVersion, versionedDir } from "../../../../src/domain/image/vpick.js";

test("versionedDir: the name and suffix systemd derives from NAME[.KIND][.raw].v", () => {
  assert.deepEqual(versionedDir("tool.raw.v", "sysext"), {
    name: "tool",
    suffix: ".raw",
    wants: "file",
  });
  assert.deepEqual(versionedDir("tool.sysext.raw.v", "sysext"), {
    name: "tool",
    suffix: ".sysext.raw",
    wants: "file",
  });
  assert.deepEqual(versionedDir("etc.v", "confext"), { name: "etc", suffix: "", wants: "dir" });
  assert.equal(versionedDir("tool.raw", "sysext"), undefined);
  assert.equal(versionedDir(".raw.v", "sysext"), undefined);
});

test("pickVersion: the strverscmp-newest NAME_VERSION.raw wins", () => {
  const dir = versionedDir("tool.raw.v", "sysext")!;
  const pick = pickVersion(
    ["tool_1.9.raw", "tool_1.10.raw", "tool_1.10~rc1.raw", "other_9.raw", "tool.raw", "tool_2.img"],
    dir,
    "x86-64",
    "x86",
  );
  assert.deepEqual(pick, { file: "tool_1.10.raw", version: "1.10" });
});

test("pickVersion: architectures, tries and invalid versions as vpick.c", () => {
  const dir = versionedDir("tool.raw.v", "sysext")!;
  // A foreign architecture is skipped even when newer; native beats secondary at one version.
  assert.equal(
    pickVersion(["tool_3_arm64.raw", "tool_2_x86.raw", "tool_2_x86-64.raw"], dir, "x86-64", "x86")
      ?.file,
    "tool_2_x86-64.raw",
  );
  // An entry with no tries left loses to an older one that has some.
  assert.equal(
    pickVersion(["tool_3+0-3.raw", "tool_2+1.raw"], dir, "x86-64", "x86")?.file,
    "tool_2+1.raw",
  );
  assert.deepEqual(pickVersion(["tool_2+1.raw"], dir, "x86-64")?.triesLeft, 1);
  // "tool_.raw" has no version; "tool_a b.raw" an invalid one: nothing to pick.
  assert.equal(pickVersion(["tool_.raw", "tool_a b.raw"], dir, "x86-64"), undefined);
  // The kind suffix is part of the pattern when the directory has it.
  const kairos = versionedDir("tool.sysext.raw.v", "sysext")!;
  assert.equal(
    pickVersion(["tool_1.raw", "tool_2.sysext.raw"], kairos, "x86-64")?.file,
    "tool_2.sysext.raw",
  );
});
