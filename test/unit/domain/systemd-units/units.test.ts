// The unit writers: which files each systemd version gets, the policies per boot kind, quoting of
// the extctl path, and reading the version out of libsystemd-shared's file name.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ANY_IMAGE_POLICY,
  NORMAL_IMAGE_POLICY,
  TRUSTED_IMAGE_POLICY,
  UNIT_MARKER,
  bootUnit,
  dropIn,
  dropInPolicy,
  enabledByInstall,
  quoteArg,
  unitSet,
  versionFromLibraryName,
} from "../../../../src/domain/systemd-units/units.js";

test("systemd 253 and older get only the boot unit; 254+ also both drop-ins", () => {
  assert.deepEqual(
    unitSet("/usr/bin/extctl", 252, VERITY).files.map((f) => f.path),
    ["/etc/systemd/system/extctl-boot.service"],
  );
  assert.equal(unitSet("/usr/bin/extctl", undefined, VERITY).files.length, 1);
  assert.deepEqual(
    unitSet("/usr/bin/extctl", 254, VERITY).files.map((f) => f.path),
    [
      "/etc/systemd/system/extctl-boot.service",
      "/etc/systemd/system/systemd-sysext.service.d/10-extctl-image-policy.conf",
      "/etc/systemd/system/systemd-confext.service.d/10-extctl-image-policy.conf",
    ],
  );
});

const VERITY = dropInPolicy("verity");

test("drop-ins reset ExecStart and carry the chosen image policy", () => {
  for (const [name, policy] of [
    ["signed", TRUSTED_IMAGE_POLICY],
    ["verity", NORMAL_IMAGE_POLICY],
    ["any", ANY_IMAGE_POLICY],
    ["root=signed+absent:usr=absent", "root=signed+absent:usr=absent"],
  ] as const) {
    const chosen = dropInPolicy(name);
    const sysext = dropIn("sysext", chosen).content;
    const lines = sysext.split("\n");
    assert.equal(lines[0], UNIT_MARKER);
    const reset = lines.indexOf("ExecStart=");
    assert.ok(reset > 0);
    assert.equal(
      lines[reset + 1],
      `ExecStart=/usr/bin/systemd-sysext refresh --image-policy=${policy}`,
    );
    const confext = dropIn("confext", chosen).content;
    assert.match(
      confext,
      new RegExp(`systemd-confext refresh --image-policy=${policy.replace(/\+/g, "\\+")}`),
    );
    assert.doesNotMatch(confext, /HIERARCHIES/);
  }
});

test("the sysext hierarchies list /usr subdirs and /opt but never /usr or /usr/local", () => {
  const m = /SYSTEMD_SYSEXT_HIERARCHIES=([^"]+)"/.exec(dropIn("sysext", VERITY).content);
  const dirs = (m?.[1] ?? "").split(":");
  assert.ok(dirs.includes("/usr/bin") && dirs.includes("/opt"));
  assert.ok(!dirs.includes("/usr") && !dirs.some((d) => d.startsWith("/usr/local")));
});

test("the boot unit runs extctl boot --no-refresh before systemd-sysext and confext", () => {
  const unit = bootUnit("/opt/my tools/extctl").content;
  assert.match(unit, /^ExecStart="\/opt\/my tools\/extctl" boot --no-refresh$/m);
  assert.match(unit, /^Before=systemd-sysext\.service systemd-confext\.service/m);
  assert.match(unit, /^WantedBy=sysinit\.target$/m);
});

test("quoteArg leaves plain paths alone and escapes what systemd would expand", () => {
  assert.equal(quoteArg("/usr/bin/extctl"), "/usr/bin/extctl");
  assert.equal(quoteArg("/a b/$x%y"), '"/a b/$$x%%y"');
});

test("versionFromLibraryName", () => {
  assert.equal(versionFromLibraryName("libsystemd-shared-252.so"), 252);
  assert.equal(versionFromLibraryName("libsystemd-shared-256.5-1.so"), 256);
  assert.equal(versionFromLibraryName("libsystemd-core-252.so"), undefined);
  assert.equal(versionFromLibraryName("libsystemd-shared.so"), undefined);
});

test("--policy takes the three names or a systemd policy, and refuses what would break the unit", () => {
  assert.equal(dropInPolicy("any").name, "any");
  assert.equal(dropInPolicy("signed").spec, TRUSTED_IMAGE_POLICY);
  assert.deepEqual(dropInPolicy("root=verity:usr=verity"), {
    name: "custom",
    spec: "root=verity:usr=verity",
  });
  assert.throws(() => dropInPolicy("root=bogus"), /not a policy flag/);
  assert.throws(
    () => dropInPolicy("root=signed\nExecStartPre=/bin/sh"),
    (e: Error) => /invalid|unit file/.test(e.message),
  );
});

test("the boot unit records the enable links install made, and reads them back", () => {
  const links = [
    "/etc/systemd/system/sysinit.target.wants/systemd-sysext.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-confext.service",
  ];
  const unit = bootUnit("/usr/bin/extctl", links).content;
  assert.ok(unit.startsWith(UNIT_MARKER + "\n"));
  assert.deepEqual(enabledByInstall(unit), links);
  assert.deepEqual(enabledByInstall(bootUnit("/usr/bin/extctl").content), []);
});
