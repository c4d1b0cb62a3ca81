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
  checkCalendarSpec,
  dropIn,
  dropInPolicy,
  enabledByInstall,
  profileScript,
  quoteArg,
  unitSet,
  blessService,
  upgradeService,
  upgradeTimer,
  upgradeTimerWantsLink,
  versionFromLibraryName,
} from "../../../../src/domain/systemd-units/units.js";
import type { ExtctlError } from "../../../../src/util/errors.js";

test("systemd 253 and older get only the boot and bless units; 254+ also both drop-ins", () => {
  assert.deepEqual(
    unitSet("/usr/bin/extctl", 252, VERITY).files.map((f) => f.path),
    ["/etc/systemd/system/extctl-boot.service", "/etc/systemd/system/extctl-bless.service"],
  );
  assert.equal(unitSet("/usr/bin/extctl", undefined, VERITY).files.length, 2);
  assert.deepEqual(
    unitSet("/usr/bin/extctl", 254, VERITY).files.map((f) => f.path),
    [
      "/etc/systemd/system/extctl-boot.service",
      "/etc/systemd/system/extctl-bless.service",
      "/etc/systemd/system/systemd-sysext.service.d/10-extctl-image-policy.conf",
      "/etc/systemd/system/systemd-confext.service.d/10-extctl-image-policy.conf",
      "/etc/profile.d/systemd-sysext.sh",
      "/etc/profile.d/systemd-confext.sh",
    ],
  );
});

test("the profile scripts export the hierarchies the units merge with", () => {
  const sysext = profileScript("sysext").content.split("\n");
  assert.equal(sysext[0], UNIT_MARKER);
  const drop = dropIn("sysext", VERITY).content;
  const inUnit = /Environment="SYSTEMD_SYSEXT_HIERARCHIES=([^"]*)"/.exec(drop)?.[1];
  assert.ok(inUnit);
  assert.ok(sysext.includes(`export SYSTEMD_SYSEXT_HIERARCHIES="${inUnit}"`));
  assert.ok(profileScript("confext").content.includes('export SYSTEMD_CONFEXT_HIERARCHIES="/etc"'));
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

test("the upgrade service is a oneshot after the network, upgrading sysexts then confexts", () => {
  const unit = upgradeService("/usr/bin/extctl");
  assert.equal(unit.path, "/etc/systemd/system/extctl-upgrade.service");
  const lines = unit.content.split("\n");
  assert.equal(lines[0], UNIT_MARKER);
  assert.ok(lines.includes("Type=oneshot"));
  assert.ok(lines.includes("Wants=network-online.target"));
  assert.match(unit.content, /^After=network-online\.target /m);
  assert.deepEqual(
    lines.filter((l) => l.startsWith("ExecStart=")),
    [
      "ExecStart=/usr/bin/extctl sysext upgrade --all --now",
      "ExecStart=/usr/bin/extctl confext upgrade --all --now",
    ],
  );
  assert.ok(
    lines.includes("SuccessExitStatus=3 75"),
    "nothing to do (3) and an unreachable catalog or registry (75) are no failure",
  );
  assert.doesNotMatch(unit.content, /\[Install\]/, "started by the timer, not enabled itself");
  assert.match(
    upgradeService("/opt/my tools/extctl").content,
    /^ExecStart="\/opt\/my tools\/extctl" sysext /m,
  );
});

test("the upgrade timer: OnCalendar (daily by default), 1h random delay, persistent, timers.target", () => {
  const timer = upgradeTimer();
  assert.equal(timer.path, "/etc/systemd/system/extctl-upgrade.timer");
  const lines = timer.content.split("\n");
  assert.equal(lines[0], UNIT_MARKER);
  for (const line of [
    "[Timer]",
    "OnCalendar=daily",
    "RandomizedDelaySec=1h",
    "Persistent=true",
    "[Install]",
    "WantedBy=timers.target",
  ])
    assert.ok(lines.includes(line), line);
  assert.match(upgradeTimer("Mon *-*-* 03:00").content, /^OnCalendar=Mon \*-\*-\* 03:00$/m);
  assert.deepEqual(upgradeTimerWantsLink(), {
    path: "/etc/systemd/system/timers.target.wants/extctl-upgrade.timer",
    target: "/etc/systemd/system/extctl-upgrade.timer",
  });
});

test("unitSet adds the upgrade service, timer and timer link only with autoUpgrade", () => {
  const plain = unitSet("/usr/bin/extctl", 255, VERITY);
  assert.ok(!plain.files.some((f) => f.path.includes("upgrade")));
  assert.equal(plain.links.length, 2);
  const auto = unitSet("/usr/bin/extctl", 252, VERITY, [], { onCalendar: "weekly" });
  assert.deepEqual(
    auto.files.map((f) => f.path),
    [
      "/etc/systemd/system/extctl-boot.service",
      "/etc/systemd/system/extctl-bless.service",
      "/etc/systemd/system/extctl-upgrade.service",
      "/etc/systemd/system/extctl-upgrade.timer",
    ],
  );
  assert.match(auto.files[3]?.content ?? "", /^OnCalendar=weekly$/m);
  assert.deepEqual(
    auto.links.map((l) => l.path),
    [
      "/etc/systemd/system/sysinit.target.wants/extctl-boot.service",
      "/etc/systemd/system/multi-user.target.wants/extctl-bless.service",
      "/etc/systemd/system/timers.target.wants/extctl-upgrade.timer",
    ],
  );
});

test("checkCalendarSpec takes systemd's shorthands and events, refuses the rest as usage errors", () => {
  for (const ok of [
    "daily",
    "Weekly",
    "Mon *-*-* 03:00",
    "Mon..Fri 22:30",
    "Sat,Sun 04:00:00",
    "*-*-* 04:00:00 UTC",
    "*-*-01 00:00",
    "2027-01-01",
    "*:0/15",
    "03:00 Europe/Berlin",
  ])
    assert.equal(checkCalendarSpec(ok), ok, ok);
  assert.equal(checkCalendarSpec("  daily "), "daily");
  for (const bad of [
    "",
    "   ",
    "daily\nExecStartPre=/bin/sh",
    "%H:00",
    'daily"',
    "every day",
    "bogus",
    "a b c d e",
    "x".repeat(201),
  ])
    assert.throws(
      () => checkCalendarSpec(bad),
      (e: ExtctlError) => e.code === "usage" && e.exitCode === 2 && /--on-calendar/.test(e.message),
      JSON.stringify(bad),
    );
  // Parsed by systemd-analyze: only the unit-file safety is ours to check.
  assert.equal(checkCalendarSpec("every day", { parsed: true }), "every day");
  assert.throws(() => checkCalendarSpec("%H", { parsed: true }), { code: "usage" });
});

test("the bless unit runs `extctl bless` only once boot-complete.target is reached", () => {
  const unit = blessService("/usr/bin/extctl").content;
  assert.match(unit, /^Requires=boot-complete\.target$/m);
  assert.match(unit, /^After=.*\bboot-complete\.target\b/m);
  assert.match(unit, /^ExecStart=\/usr\/bin\/extctl bless$/m);
  assert.match(unit, /^WantedBy=multi-user\.target$/m);
});
