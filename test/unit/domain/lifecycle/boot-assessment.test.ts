// Boot assessment's state machine (issue 28 item 5): tries spent per boot, blessing, the fallback
// to the previous version with no tries left, and the trial an upgrade during a trial starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  bless,
  decideAtBoot,
  parseTries,
  startTrial,
} from "../../../../src/domain/lifecycle/boot-assessment.js";
import type { VersionEntry, VersionRecord } from "../../../../src/domain/store/versions.js";

const entry = (version: string): VersionEntry => ({
  version,
  file: `${version}-abc.sysext.raw`,
  reference: `oci://r/x@sha256:${version}`,
  installedAt: "2026-12-01T00:00:00.000Z",
});
const V1 = entry("1.0.0");
const V2 = entry("2.0.0");
const V3 = entry("3.0.0");
const record = (): VersionRecord => ({
  format: 1,
  name: "hello",
  pinned: false,
  catalogs: [],
  versions: [V1, V2, V3],
  rolledBack: [],
});

test("--tries 1: the first boot spends the try, the second falls back to the previous version and records it", () => {
  const r = record();
  startTrial(r, V1, V2, 1);
  assert.deepEqual(
    [r.pending?.version, r.pending?.previous, r.pending?.triesLeft],
    ["2.0.0", "1.0.0", 1],
  );
  assert.deepEqual(decideAtBoot(r, V2), { action: "try", version: "2.0.0", triesLeft: 0 });
  const fallback = decideAtBoot(r, V2, new Date("2026-12-08T00:00:00Z"));
  assert.equal(fallback.action, "fallback");
  assert.deepEqual(
    fallback.action === "fallback" ? [fallback.from, fallback.to, fallback.toFile] : [],
    ["2.0.0", "1.0.0", V1.file],
  );
  assert.equal(r.pending, undefined);
  assert.equal(r.bootFallbackCount, 1);
  assert.deepEqual(
    r.bootFallbacks?.map((f) => [f.at, f.from, f.to]),
    [["2026-12-08T00:00:00.000Z", "2.0.0", "1.0.0"]],
  );
  assert.match(r.bootFallbacks?.[0]?.reason ?? "", /not blessed in 1 boot/);
  assert.deepEqual(r.rolledBack, ["2.0.0"], "upgrade leaves it alone, as after a rollback");
  assert.deepEqual(decideAtBoot(r, V1), { action: "none" }, "the next boot has nothing pending");
});

test("bless after boot-complete ends the trial; later boots keep the version", () => {
  const r = record();
  startTrial(r, V1, V2, 2);
  assert.equal(decideAtBoot(r, V2).action, "try");
  assert.deepEqual(bless(r, V2), { action: "blessed", version: "2.0.0" });
  assert.equal(r.pending, undefined);
  assert.equal(r.blessed, "2.0.0");
  assert.deepEqual(decideAtBoot(r, V2), { action: "none" });
  assert.deepEqual(bless(r, V2), { action: "already", version: "2.0.0" });
  assert.equal(r.bootFallbackCount, undefined);
});

test("N tries are N boots before the fallback", () => {
  const r = record();
  startTrial(r, V1, V2, 3);
  const actions = Array.from({ length: 4 }, () => decideAtBoot(r, V2).action);
  assert.deepEqual(actions, ["try", "try", "try", "fallback"]);
});

test("a trial of a version that is no longer current (rolled back by hand) is dropped, not fallen back from", () => {
  const r = record();
  startTrial(r, V1, V2, 1);
  assert.deepEqual(decideAtBoot(r, V1), { action: "stale" });
  assert.equal(r.pending, undefined);
  assert.equal(r.bootFallbackCount, undefined);
});

test("upgrading during a trial falls back to the last version not on trial; --tries 0 ends a trial", () => {
  const r = record();
  startTrial(r, V1, V2, 1);
  startTrial(r, V2, V3, 2);
  assert.deepEqual(
    [r.pending?.version, r.pending?.previous, r.pending?.previousFile],
    ["3.0.0", "1.0.0", V1.file],
  );
  startTrial(r, V3, V2, 0);
  assert.equal(r.pending, undefined);
});

test("the default tries file holds one whole number 0-100", () => {
  assert.equal(parseTries("2\n", "f"), 2);
  assert.equal(parseTries("0", "f"), 0);
  for (const bad of ["", "-1", "1.5", "two", "101", "1 2"])
    assert.throws(() => parseTries(bad, "/etc/extctl/boot-tries"), /boot-tries holds/);
});
