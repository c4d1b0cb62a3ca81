// The compatibility rules per systemd version: naming, ID_LIKE (257+), levels, scope, policy, order.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkCompatibility,
  imageName,
  rulesFor,
  type HostFacts,
  type ImageFacts,
} from "../../../../src/domain/image/compat.js";

const host: HostFacts = {
  osRelease: { ID: "ubuntu", ID_LIKE: "debian", VERSION_ID: "24.04" },
  architecture: "x86-64",
  scope: "system",
};

function image(fields: Record<string, string>, extra: Partial<ImageFacts> = {}): ImageFacts {
  return {
    fileName: "foo.sysext.raw",
    release: {
      found: "exact",
      path: "/usr/lib/extension-release.d/extension-release.foo",
      fields,
      text: "",
    },
    hasOsRelease: false,
    outsideHierarchies: [],
    ...extra,
  };
}

test("image names: 252 keeps .sysext, 255 and later strip it", () => {
  assert.equal(imageName("foo.sysext.raw", "sysext", 252), "foo.sysext");
  assert.equal(imageName("foo.sysext.raw", "sysext", 255), "foo");
  assert.equal(imageName("foo.confext.raw", "confext", 258), "foo");
  assert.equal(imageName("foo.confext.raw", "sysext", 258), "foo.confext");
  assert.equal(imageName("foo.raw", "sysext", 252), "foo");
  assert.deepEqual([252, 257, 262].map(rulesFor), [252, 257, 262]);
});

test("ID_LIKE counts only from systemd 257 on", () => {
  const facts = image({ ID: "debian", VERSION_ID: "24.04" });
  assert.equal(checkCompatibility(facts, host, "sysext", 255).compatible, false);
  assert.match(checkCompatibility(facts, host, "sysext", 256).reason ?? "", /257\+/);
  assert.equal(checkCompatibility(facts, host, "sysext", 256).compatible, false);
  assert.equal(checkCompatibility(facts, host, "sysext", 257).compatible, true);
});

test("empty fields count as missing, and a level-only host needs no VERSION_ID", () => {
  assert.equal(
    checkCompatibility(image({ ID: "_any", ARCHITECTURE: "" }), host, "sysext", 257).compatible,
    true,
  );
  assert.equal(checkCompatibility(image({ ID: "" }), host, "sysext", 257).compatible, false);
  assert.equal(
    checkCompatibility(image({ ID: "ubuntu", VERSION_ID: "" }), host, "sysext", 257).compatible,
    false,
  );
  const levelOnly = { ...host, osRelease: { ID: "ubuntu", SYSEXT_LEVEL: "1" } };
  assert.equal(
    checkCompatibility(image({ ID: "ubuntu" }), levelOnly, "sysext", 252).compatible,
    true,
  );
});

test("confext does not merge before systemd 254", () => {
  const v = checkCompatibility(image({ ID: "_any" }), host, "confext", 252);
  assert.equal(v.compatible, false);
  assert.match(v.reason ?? "", /no systemd-confext \(systemd-confext \(systemd 254\+\)\)/);
  assert.equal(checkCompatibility(image({ ID: "_any" }), host, "confext", 257).compatible, true);
});

test("the image policy is its own rule; a unit policy on 252 fails the refresh", () => {
  const policy = {
    text: "root=verity+absent:usr=verity+absent",
    source: "/etc/systemd/system/systemd-sysext.service.d/10-kairos.conf",
    inUnit: true,
    isDefault: false,
    allowed: false,
    reason: "no verity data",
  };
  const refused = checkCompatibility(image({ ID: "_any" }, { policy }), host, "sysext", 257);
  assert.equal(refused.compatible, false);
  assert.equal(refused.rules.find((r) => r.status === "fail")?.rule, "image-policy");
  const star = { ...policy, text: "*", allowed: true };
  assert.equal(
    checkCompatibility(image({ ID: "_any" }, { policy: star }), host, "sysext", 257).compatible,
    true,
  );
  const old = checkCompatibility(image({ ID: "_any" }, { policy: star }), host, "sysext", 252);
  assert.equal(old.compatible, false);
  assert.match(old.reason ?? "", /does not know/);
});

test("SYSEXT_LEVEL is compared when both sides set it, else VERSION_ID", () => {
  const leveled = { ...host, osRelease: { ...host.osRelease, SYSEXT_LEVEL: "2" } };
  assert.equal(
    checkCompatibility(image({ ID: "ubuntu", SYSEXT_LEVEL: "2" }), leveled, "sysext", 255)
      .compatible,
    true,
  );
  const v = checkCompatibility(
    image({ ID: "ubuntu", SYSEXT_LEVEL: "3", VERSION_ID: "24.04" }),
    leveled,
    "sysext",
    255,
  );
  assert.equal(v.compatible, false);
  assert.match(v.reason ?? "", /SYSEXT_LEVEL=3/);
  // confext uses CONFEXT_LEVEL and CONFEXT_SCOPE, not the SYSEXT_ ones.
  const conf = checkCompatibility(
    image({ ID: "ubuntu", SYSEXT_LEVEL: "2", VERSION_ID: "24.04", SYSEXT_SCOPE: "initrd" }),
    leveled,
    "confext",
    255,
  );
  assert.equal(conf.compatible, true);
});

test("rules run in systemd's order and stop at the first failure", () => {
  const v = checkCompatibility(
    image({ ID: "fedora", ARCHITECTURE: "arm64", SYSEXT_SCOPE: "initrd" }),
    host,
    "sysext",
    255,
  );
  assert.equal(v.compatible, false);
  assert.equal(v.rules.find((r) => r.status === "fail")?.rule, "scope");
  assert.equal(v.rules.find((r) => r.rule === "architecture")?.status, "skip");
  assert.deepEqual(
    v.rules.map((r) => r.rule),
    [
      "host-os-release",
      "image-name",
      "partition-architecture",
      "no-os-release",
      "release-file",
      "not-empty",
      "scope",
      "architecture",
      "id-set",
      "id-match",
      "version",
    ],
  );
});

test("os-release in the image, a foreign DDI and extra hierarchies", () => {
  assert.equal(
    checkCompatibility(image({ ID: "_any" }, { hasOsRelease: true }), host, "sysext", 252)
      .compatible,
    false,
  );
  assert.equal(
    checkCompatibility(image({ ID: "_any" }, { foreignArchitecture: "arm64" }), host, "sysext", 252)
      .compatible,
    false,
  );
  const extra = checkCompatibility(
    image({ ID: "_any" }, { outsideHierarchies: ["/etc"] }),
    host,
    "sysext",
    252,
  );
  assert.equal(extra.compatible, true);
  assert.equal(extra.rules.at(-1)?.status, "warn");
});

test("a missing or ambiguous release file refuses the image", () => {
  const none = checkCompatibility(
    image({}, { release: { found: "none", reason: "no extension-release.foo", candidates: [] } }),
    host,
    "sysext",
    255,
  );
  assert.equal(none.compatible, false);
  assert.equal(none.reason, "no extension-release.foo");
});
