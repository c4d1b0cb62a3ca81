// Choosing a version from catalogs as Kairos does (latest, a pinned tag, a semver constraint),
// then this architecture; several catalogs and shadowing; staged rollouts.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { parseCatalog, type Catalog } from "../../../../src/domain/catalog/catalog.js";
import {
  chooseTag,
  goarch,
  offeredVersions,
  resolveExtension,
  rolloutBucket,
  tagVersion,
} from "../../../../src/domain/catalog/resolve.js";
import { ExtctlError } from "../../../../src/util/errors.js";
import { bytesOf, catalogJson, ref, type TagSpec } from "./fixtures.js";

const A = "https://a.example/releases.json";
const B = "file:///srv/releases.json";

function catalog(
  url: string,
  layers: { name: string; latest?: string; tags: (string | TagSpec)[] }[],
): Catalog {
  return parseCatalog(bytesOf(catalogJson(layers)), url);
}

const kairos = catalog(A, [
  {
    name: "gpg",
    latest: "2.55.0",
    tags: ["2.50.0", "2.54.0", "2.54.1", "2.55.0", "stable", "2.54"],
  },
]);
const amd64 = { kind: "sysext" as const, arch: "amd64" };

function version(requested: string | undefined, catalogs = [kairos]): string {
  return resolveExtension(catalogs, "gpg", requested, amd64).version;
}

test("Kairos's constraint examples pick what Masterminds semver picks", () => {
  assert.equal(version(">= 2.50, < 2.55"), "2.54.1");
  assert.equal(version("^2.50"), "2.55.0");
  assert.equal(version("~2.54.0"), "2.54.1");
  assert.equal(version("< 2.54"), "2.50.0");
  assert.equal(version(">=2.50,<2.55"), "2.54.1");
  assert.equal(version("2.54.x"), "2.54.1");
});

test("no version is the layer's latest when it publishes for this architecture", () => {
  const r = resolveExtension([kairos], "gpg", undefined, amd64);
  assert.equal(r.version, "2.55.0");
  assert.equal(r.pinned, false);
  assert.equal(r.requested, undefined);
  assert.equal(r.reference, `oci://${ref("gpg", "2.55.0", "amd64")}`);
  assert.equal(r.catalog, A);
  assert.deepEqual(r.architectures, ["amd64", "arm64"]);
  assert.deepEqual(r.shadowed, []);
  // Without latest, the newest version that publishes.
  const noLatest = catalog(A, [{ name: "gpg", tags: ["1.0.0", "1.2.0", "stable"] }]);
  assert.equal(resolveExtension([noLatest], "gpg", undefined, amd64).version, "1.2.0");
  const none = catalog(A, [{ name: "gpg", tags: [] }]);
  assert.throws(
    () => resolveExtension([none], "gpg", undefined, amd64),
    /version latest of gpg is not available in https:\/\/a\.example\/releases\.json: the catalog lists no version \(published: none\)/,
  );
});

test("a string equal to a tag is a pin: stable, a non-semver 2.54, an exact version", () => {
  const stable = resolveExtension([kairos], "gpg", "stable", amd64);
  assert.equal(stable.version, "stable");
  assert.equal(stable.pinned, true);
  assert.equal(stable.requested, "stable");
  assert.equal(version("2.54"), "2.54");
  const exact = resolveExtension([kairos], "gpg", "2.54.0", amd64);
  assert.equal(exact.version, "2.54.0");
  assert.equal(exact.pinned, true);
});

test("v-prefixed tags are semver; tags that are not semver never satisfy a constraint", () => {
  assert.equal(tagVersion("v1.2.3"), "1.2.3");
  assert.equal(tagVersion("1.2"), undefined);
  assert.equal(tagVersion("stable"), undefined);
  assert.equal(tagVersion("=1.2.3"), undefined);
  const c = catalog(A, [{ name: "gpg", latest: "v3.0.0", tags: ["v3.0.0", "v2.9.1", "3.1"] }]);
  assert.equal(version(">= 2, < 4", [c]), "v3.0.0");
  assert.equal(version("~2.9", [c]), "v2.9.1");
});

test("a version that is neither a tag nor a satisfiable constraint is not available", () => {
  for (const asked of ["3.0.0", "> 9", "banana", "^1"]) {
    assert.throws(
      () => resolveExtension([kairos], "gpg", asked, amd64),
      (e: unknown) => {
        assert.ok(e instanceof ExtctlError);
        assert.equal(
          e.message,
          `version ${asked} of gpg is not available in ${A} (published: 2.50.0, 2.54.0, 2.54.1, 2.55.0, stable, 2.54)`,
        );
        return true;
      },
    );
  }
});

test("a missing architecture names the architectures the tag publishes", () => {
  const c = catalog(A, [
    { name: "tool", latest: "1.1.0", tags: [{ tag: "1.1.0", arches: ["arm64", "amd64"] }] },
  ]);
  assert.throws(
    () => resolveExtension([c], "tool", "1.1.0", { kind: "sysext", arch: "riscv64" }),
    /version 1\.1\.0 of tool in https:\/\/a\.example\/releases\.json has no sysext for riscv64 \(published: amd64, arm64\)/,
  );
  assert.throws(
    () => resolveExtension([c], "tool", "1.1.0", { kind: "confext", arch: "amd64" }),
    /has no confext image for any architecture/,
  );
  assert.throws(
    () => resolveExtension([c], "tool", undefined, { kind: "sysext", arch: "riscv64" }),
    /no version of tool in https:\/\/a\.example\/releases\.json has a sysext for riscv64 \(published: 1\.1\.0 \(amd64, arm64\)\)/,
  );
});

test("the first catalog publishing the name wins; later ones are shadowed and logged", () => {
  const first = catalog(A, [{ name: "other", latest: "1.0.0", tags: ["1.0.0"] }]);
  const second = catalog(B, [{ name: "gpg", latest: "2.0.0", tags: ["2.0.0"] }]);
  const third = catalog("oci://r.example/cat:1", [
    { name: "gpg", latest: "9.0.0", tags: ["9.0.0"] },
  ]);
  const logs: string[] = [];
  const r = resolveExtension([first, second, third], "gpg", undefined, {
    ...amd64,
    log: (m) => logs.push(m),
  });
  assert.equal(r.version, "2.0.0");
  assert.equal(r.catalog, B);
  assert.deepEqual(r.shadowed, ["oci://r.example/cat:1"]);
  assert.deepEqual(logs, [`gpg from ${B} shadows oci://r.example/cat:1`]);
  assert.throws(
    () => resolveExtension([first], "gpg", undefined, amd64),
    /no catalog publishes gpg \(searched: https:\/\/a\.example\/releases\.json\)/,
  );
});

test("host architecture names map to Go's", () => {
  const cases: [string, string][] = [
    ["x86-64", "amd64"],
    ["x86_64", "amd64"],
    ["arm64", "arm64"],
    ["aarch64", "arm64"],
    ["x86", "386"],
    ["i686", "386"],
    ["arm", "arm"],
    ["riscv64", "riscv64"],
    ["ppc64-le", "ppc64le"],
    ["s390x", "s390x"],
    ["loongarch64", "loong64"],
    ["x64", "amd64"],
  ];
  for (const [host, go] of cases) assert.equal(goarch(host), go, host);
});

test("the rollout bucket is stable, in [0, 100), and spreads machine-ids evenly", () => {
  const id = "0123456789abcdef0123456789abcdef";
  assert.equal(rolloutBucket(id, "gpg"), rolloutBucket(id, "gpg"));
  assert.equal(rolloutBucket(`${id.toUpperCase()}\n`, "gpg"), rolloutBucket(id, "gpg"));
  assert.notEqual(rolloutBucket(id, "gpg"), rolloutBucket(id, "fwupd"));
  // A fixed list of machine-ids (128 bits in hex, as systemd makes them).
  const ids = Array.from({ length: 200 }, (_, i) =>
    createHash("sha256").update(`machine-${i}`).digest("hex").slice(0, 32),
  );
  for (const percent of [10, 30, 50, 90]) {
    const inWave = ids.filter((m) => rolloutBucket(m, "gpg") < percent).length;
    assert.ok(Math.abs(inWave / 2 - percent) <= 10, `${inWave} of 200 in a ${percent}% wave`);
  }
  for (const m of ids) {
    const b = rolloutBucket(m, "gpg");
    assert.ok(b >= 0 && b < 100);
  }
});

/** A machine-id in the wave (or outside it) of `percent` for `name`. */
function machineFor(name: string, percent: number, inside: boolean): string {
  for (let i = 0; ; i++) {
    const id = i.toString(16).padStart(32, "0");
    if (rolloutBucket(id, name) < percent === inside) return id;
  }
}

test("rollout: a gated tag is taken only inside its wave; outside, the best ungated tag", () => {
  const c = catalog(A, [
    {
      name: "gpg",
      latest: "2.1.0",
      tags: [{ tag: "2.1.0", rollout: 20 }, "2.0.1", { tag: "2.0.2", arches: ["arm64"] }, "1.9.0"],
    },
  ]);
  const inside = machineFor("gpg", 20, true);
  const outside = machineFor("gpg", 20, false);
  const a = resolveExtension([c], "gpg", undefined, { ...amd64, machineId: inside });
  assert.equal(a.version, "2.1.0");
  assert.deepEqual(a.rollout, { percent: 20, inWave: true });
  // Outside: the highest ungated semver tag with an amd64 image (2.0.2 has only arm64).
  const b = resolveExtension([c], "gpg", undefined, { ...amd64, machineId: outside });
  assert.equal(b.version, "2.0.1");
  assert.equal(b.rollout, undefined);
  // Without a machine-id no wave includes the node.
  assert.equal(resolveExtension([c], "gpg", undefined, amd64).version, "2.0.1");
  // A constraint skips the gated tag outside the wave, and 2.0.2, which has no amd64 image.
  assert.equal(
    resolveExtension([c], "gpg", "^2", { ...amd64, machineId: outside }).version,
    "2.0.1",
  );
  assert.equal(
    resolveExtension([c], "gpg", "^2", { kind: "sysext", arch: "arm64", machineId: outside })
      .version,
    "2.0.2",
  );
  assert.equal(
    resolveExtension([c], "gpg", "^2", { ...amd64, machineId: inside }).version,
    "2.1.0",
  );
  // A pin to a gated tag is honoured.
  const pin = resolveExtension([c], "gpg", "2.1.0", { ...amd64, machineId: outside });
  assert.equal(pin.version, "2.1.0");
  assert.equal(pin.pinned, true);
  assert.deepEqual(pin.rollout, { percent: 20, inWave: false });
  // 0% reaches nobody, 100% everybody.
  const zero = catalog(A, [{ name: "x", latest: "1.0.0", tags: [{ tag: "1.0.0", rollout: 0 }] }]);
  assert.throws(
    () => chooseTag(zero.layers[0]!, undefined, { ...amd64, machineId: inside }),
    /rolled out to 0% of nodes, not yet to this one/,
  );
  assert.throws(
    () => chooseTag(zero.layers[0]!, ">= 1", { ...amd64, machineId: inside }),
    /staged rollout this node is not part of/,
  );
  const all = catalog(A, [{ name: "x", latest: "1.0.0", tags: [{ tag: "1.0.0", rollout: 100 }] }]);
  assert.equal(
    chooseTag(all.layers[0]!, undefined, { ...amd64, machineId: outside }).tag.tag,
    "1.0.0",
  );
});

// Kairos's sdk/extensions/catalog_artifacts_test.go (a1bed0a8): a bare name or a constraint
// falls back to the newest version that publishes for this architecture; an exact one does not.
const artifacts = catalog(A, [
  {
    name: "fwupd",
    latest: "2.1.7",
    tags: [{ tag: "2.1.7", arches: [] }, "2.1.6"],
  },
  {
    name: "drbd",
    latest: "9.3.3",
    tags: [{ tag: "9.3.3", arches: ["arm64"] }, "9.3.2"],
  },
  {
    name: "vendor-tool",
    latest: "nightly",
    tags: [{ tag: "nightly", arches: [] }, "stable", "older"],
  },
  { name: "git", latest: "2.55.0", tags: [{ tag: "2.55.0", arches: [] }] },
]);

function pick(name: string, requested: string | undefined, arch = "amd64"): string {
  return resolveExtension([artifacts], name, requested, { kind: "sysext", arch }).version;
}

test("Kairos's artifact table: fallback per architecture past versions without an image", () => {
  const logs: string[] = [];
  const r = resolveExtension([artifacts], "fwupd", undefined, {
    ...amd64,
    log: (m) => logs.push(m),
  });
  assert.equal(r.version, "2.1.6");
  assert.equal(r.reference, `oci://${ref("fwupd", "2.1.6", "amd64")}`);
  assert.deepEqual(logs, ["fwupd: the latest version 2.1.7 has no sysext for amd64; taking 2.1.6"]);
  assert.equal(pick("fwupd", ">= 2.1"), "2.1.6");
  assert.equal(pick("fwupd", "2.1.6"), "2.1.6");
  assert.equal(pick("drbd", undefined), "9.3.2");
  assert.equal(pick("drbd", undefined, "arm64"), "9.3.3");
  assert.equal(pick("drbd", "^9"), "9.3.2");
  assert.equal(pick("drbd", "^9", "arm64"), "9.3.3");
  assert.equal(pick("vendor-tool", undefined), "stable");
});

test("Kairos's artifact table: the refusals name the constraint, the architecture, what is published", () => {
  const refusal = (name: string, requested: string | undefined, arch = "amd64"): string => {
    try {
      pick(name, requested, arch);
    } catch (e) {
      assert.ok(e instanceof ExtctlError);
      return e.message;
    }
    assert.fail(`${name}@${requested} resolved`);
  };
  assert.equal(
    refusal("fwupd", "> 2.1.6"),
    `no version of fwupd in ${A} that satisfies > 2.1.6 has a sysext for amd64 (satisfying: 2.1.7 (none))`,
  );
  assert.equal(
    refusal("fwupd", "2.1.7"),
    `version 2.1.7 of fwupd in ${A} has no sysext image for any architecture`,
  );
  assert.equal(
    refusal("drbd", "9.3.3"),
    `version 9.3.3 of drbd in ${A} has no sysext for amd64 (published: arm64)`,
  );
  assert.equal(
    refusal("vendor-tool", "nightly"),
    `version nightly of vendor-tool in ${A} has no sysext image for any architecture`,
  );
  assert.equal(
    refusal("git", undefined),
    `no version of git in ${A} has a sysext for amd64 (published: 2.55.0 (none))`,
  );
  assert.equal(
    refusal("drbd", "> 9.3.2"),
    `no version of drbd in ${A} that satisfies > 9.3.2 has a sysext for amd64 (satisfying: 9.3.3 (arm64))`,
  );
});

test("a bare name never falls back to a pre-release or past latest", () => {
  const c = catalog(A, [
    {
      name: "t",
      latest: "2.0.0",
      tags: [{ tag: "2.0.0", arches: [] }, "3.0.0", "1.9.0-rc.1", "1.8.0"],
    },
  ]);
  assert.equal(resolveExtension([c], "t", undefined, amd64).version, "1.8.0");
});

// Kairos's sdk/extensions/catalog_test.go: its fixture's arm64 digest is upper-case hex. Kairos
// checks a reference when it resolves that entry, so amd64 (and other layers) still resolve.
test("Kairos's catalog table: a bad reference refuses only its own entry", () => {
  const json = catalogJson([
    { name: "git", latest: "2.55.0", tags: ["2.55.0"] },
    { name: "tagged", latest: "1.0.0", tags: ["1.0.0"] },
  ]);
  const layers = json.layers as { tags: { sysext: Record<string, { oci: string }> }[] }[];
  const arm64 = layers[0]!.tags[0]!.sysext.arm64!;
  arm64.oci = arm64.oci.replace(
    /@sha256:(.*)$/,
    (_m, hex: string) => `@sha256:${hex.toUpperCase()}`,
  );
  layers[1]!.tags[0]!.sysext.amd64!.oci = "ghcr.io/kairos-io/hadron-layers/sysext/tagged:1.0.0";
  const c = parseCatalog(bytesOf(json), A);
  assert.equal(c.warnings.length, 2);
  assert.equal(resolveExtension([c], "git", undefined, amd64).version, "2.55.0");
  assert.equal(
    resolveExtension([c], "tagged", undefined, { kind: "sysext", arch: "arm64" }).version,
    "1.0.0",
  );
  assert.throws(
    () => resolveExtension([c], "git", undefined, { kind: "sysext", arch: "arm64" }),
    (e: unknown) => {
      assert.ok(e instanceof ExtctlError);
      assert.equal(e.code, "catalog");
      assert.match(
        e.message,
        /^version 2\.55\.0 of git in https:\/\/a\.example\/releases\.json cannot be installed: layers\[0\]\.tags\[0\]\.sysext\.arm64\.oci "ghcr\.io\/kairos-io\/hadron-layers\/sysext\/git@sha256:[0-9A-F]{64}" is not host/,
      );
      return true;
    },
  );
  // An unusable entry still counts as published: no silent fall back past it.
  assert.throws(
    () => resolveExtension([c], "tagged", undefined, amd64),
    /tagged:1\.0\.0" is not pinned/,
  );
});

test("rollout with non-semver tags: outside the wave, the newest ungated tag by publication", () => {
  // Issue 28: tags 1.0 and 2.0 (not semver), latest 2.0 gated; a node outside the wave took
  // nothing ("no version without a rollout gate") although 1.0 is ungated.
  const plain = catalog(A, [
    { name: "app", latest: "2.0", tags: [{ tag: "2.0", rollout: 10 }, "1.0", "0.9"] },
  ]);
  const outside = machineFor("app", 10, false);
  const inside = machineFor("app", 10, true);
  assert.equal(
    resolveExtension([plain], "app", undefined, { ...amd64, machineId: outside }).version,
    "1.0",
  );
  assert.equal(
    resolveExtension([plain], "app", undefined, { ...amd64, machineId: inside }).version,
    "2.0",
  );
  // Publication order is the tags' `created` time when they have one, whatever the list order.
  const timed = JSON.parse(
    bytesOf(
      catalogJson([
        { name: "app", latest: "2.0", tags: ["0.9", "1.0", "1.5", { tag: "2.0", rollout: 10 }] },
      ]),
    ).toString(),
  ) as { layers: { tags: { tag: string; created: string }[] }[] };
  const created: Record<string, string> = {
    "0.9": "2026-01-01T00:00:00Z",
    "1.0": "2026-03-01T00:00:00Z",
    "1.5": "2026-02-01T00:00:00Z",
    "2.0": "2026-04-01T00:00:00Z",
  };
  for (const tag of timed.layers[0]!.tags) tag.created = created[tag.tag]!;
  const byTime = parseCatalog(Buffer.from(JSON.stringify(timed)), A);
  assert.equal(
    resolveExtension([byTime], "app", undefined, { ...amd64, machineId: outside }).version,
    "1.0",
  );
  // Semver tags, when there are any, come first: the highest ungated one.
  const mixed = catalog(A, [
    {
      name: "app",
      latest: "3.0.0",
      tags: [{ tag: "3.0.0", rollout: 10 }, "stable", "2.0.0", "1.0.0"],
    },
  ]);
  assert.equal(
    resolveExtension([mixed], "app", undefined, {
      ...amd64,
      machineId: machineFor("app", 10, false),
    }).version,
    "2.0.0",
  );
});

test("offered versions: the winning catalog's tags, semver highest first, references per arch", () => {
  const c = catalog(A, [
    {
      name: "gpg",
      latest: "2.0.0",
      tags: ["stable", "1.0.0", { tag: "2.0.0", rollout: 50 }, { tag: "1.5.0", arches: ["arm64"] }],
    },
  ]);
  const shadowed = catalog(B, [{ name: "gpg", latest: "9.0.0", tags: ["9.0.0"] }]);
  const offered = offeredVersions([c, shadowed], "gpg", amd64);
  assert.deepEqual(
    offered.map((o) => [o.version, o.reference !== undefined, o.catalog, o.rollout?.percent]),
    [
      ["2.0.0", true, A, 50],
      ["1.5.0", false, A, undefined],
      ["1.0.0", true, A, undefined],
      ["stable", true, A, undefined],
    ],
  );
  assert.equal(offered[0]!.reference, `oci://${ref("gpg", "2.0.0", "amd64")}`);
  assert.deepEqual(offeredVersions([c], "nope", amd64), []);
});
