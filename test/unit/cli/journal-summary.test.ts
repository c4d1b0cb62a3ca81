// Under a unit, upgrade and boot print a line per event with its sd-daemon priority and one
// summary line: no table, no JSON, nothing for what did not change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootJournalText, upgradeJournalText } from "../../../src/cli/journal-summary.js";
import type { BootResult } from "../../../src/operations/boot.js";
import type { UpgradeResult } from "../../../src/operations/upgrade.js";

const lines = (text: string) => text.trimEnd().split("\n");

test("upgrade: a line per change or failure, each with its priority, then the counts", () => {
  const result: UpgradeResult = {
    kind: "sysext",
    exitCode: 1,
    items: [
      { name: "a", action: "up-to-date", reason: "1.0 is the newest" },
      { name: "b", from: "1", to: "2", action: "upgraded", reason: "ok", merged: true },
      { name: "c", from: "1", to: "3", action: "failed", reason: "it would not merge" },
      { name: "d", action: "failed", reason: "catalog unreachable", unreachable: true },
      { name: "e", action: "up-to-date", reason: "pinned" },
    ],
  };
  assert.deepEqual(lines(upgradeJournalText(result)), [
    "<6>sysext b: upgraded 1 -> 2 (merged): ok",
    "<3>sysext c: failed 1 -> 3: it would not merge",
    "<4>sysext d: failed: catalog unreachable",
    "<3>sysext upgrade: 1 upgraded, 2 failed, 2 up-to-date",
  ]);
});

test("upgrade: nothing new is the summary alone; unreachable alone is a warning; none installed says so", () => {
  const upToDate: UpgradeResult = {
    kind: "confext",
    exitCode: 3,
    items: [{ name: "a", action: "up-to-date", reason: "" }],
  };
  assert.equal(upgradeJournalText(upToDate), "<6>confext upgrade: 1 up-to-date\n");
  const unreachable: UpgradeResult = {
    kind: "sysext",
    exitCode: 75,
    items: [{ name: "a", action: "failed", reason: "refused", unreachable: true }],
  };
  assert.equal(lines(upgradeJournalText(unreachable)).at(-1), "<4>sysext upgrade: 1 failed");
  assert.equal(
    upgradeJournalText({ kind: "sysext", exitCode: 3, items: [] }),
    "<6>sysext upgrade: no sysexts installed by name\n",
  );
});

test("upgrade: a reason cannot start a line of its own", () => {
  const text = upgradeJournalText({
    kind: "sysext",
    exitCode: 1,
    items: [{ name: "a", action: "failed", reason: "bad\n<0>emergency" }],
  });
  assert.equal(lines(text).length, 2);
  assert.ok(lines(text).every((l) => /^<[3-7]>/.test(l)));
});

const BOOT: BootResult = {
  state: "active",
  uki: false,
  detectedBy: "cmdline",
  sentinels: [],
  profile: "active",
  policy: { policy: "signed", source: "/etc/extctl/policy", importedKeys: [] },
  linked: [
    { kind: "sysext", name: "a.raw", profile: "active", action: "linked" },
    { kind: "sysext", name: "b.raw", profile: "common", action: "unchanged" },
  ],
  skipped: [],
  unlinked: [],
  refresh: [],
  assessment: [],
};

test("boot: one summary line, a warning when something was skipped, an error when a merge failed", () => {
  assert.equal(
    bootJournalText(BOOT),
    "<6>boot: active boot, profile active then common, policy signed: 1 image linked, 1 already linked, 0 skipped\n",
  );
  const skipped = bootJournalText({
    ...BOOT,
    skipped: [{ kind: "sysext", name: "c.raw", profile: "active", reason: "unsigned" }],
    unlinked: [{ kind: "confext", name: "old.raw" }],
  });
  assert.match(skipped, /^<4>boot: .*: 1 image linked, 1 already linked, 1 skipped, 1 unlinked\n$/);
  const unmerged = bootJournalText({
    ...BOOT,
    refresh: [
      {
        kind: "sysext",
        refreshed: true,
        merged: [{ hierarchy: "/usr", extensions: ["a"] }],
        unmerged: [{ name: "b.raw", reason: "no" }],
      },
    ],
  });
  assert.match(unmerged, /^<3>boot: .*merged: a, 1 not merged\n$/);
  assert.equal(
    bootJournalText({ ...BOOT, state: "livecd", linked: [], profile: undefined as never }),
    "<6>boot: livecd boot, nothing linked\n",
  );
});
