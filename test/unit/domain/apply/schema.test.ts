// The apply file's schema: both shapes (alone, or under extensions: of a cloud-config), and every
// error names the line and the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseApplySpec } from "../../../../src/domain/apply/schema.js";

const SHA = "a".repeat(64);

test("a cloud-config's extensions: section is read; other keys are ignored", async () => {
  const spec = await parseApplySpec(
    `#cloud-config
users:
  - name: kairos
extensions:
  policy: signed
  trust: [/etc/extctl/fleet.crt]
  sysext:
    - source: oci://registry.example/k3s:v1.32.0@sha256:${"b".repeat(64)}
      profiles: [active, passive]
      now: true
    - source: https://example.org/tools.sysext.raw
      sha256: ${SHA.toUpperCase()}
      profiles: [common]
  confext:
    - source: file:///srv/conf/net.confext.raw
      profiles: [active]
  prune: false
`,
    "node.yaml",
  );
  assert.equal(spec.policy, "signed");
  assert.deepEqual(spec.trust, ["/etc/extctl/fleet.crt"]);
  assert.equal(spec.prune, false);
  assert.equal(spec.entries.length, 3);
  assert.deepEqual(
    spec.entries.map((e) => [e.kind, e.profiles, e.now, e.line]),
    [
      ["sysext", ["active", "passive"], true, 8],
      ["sysext", ["common"], false, 11],
      ["confext", ["active"], false, 15],
    ],
  );
  assert.equal(spec.entries[1]?.sha256, SHA, "sha256 is normalised to lowercase");
});

test("the spec alone (no extensions: key) is read too", async () => {
  const spec = await parseApplySpec(
    "sysext:\n  - source: file:///a.raw\n    profiles: [common]\nprune: true\n",
    "x.yaml",
  );
  assert.equal(spec.entries[0]?.source, "file:///a.raw");
  assert.equal(spec.prune, true);
});

const ERRORS: [string, string, RegExp][] = [
  ["invalid YAML", "sysext: [\n  - source: x\n", /^f\.yaml:\d+: invalid YAML/],
  ["no spec at all", "users: []\n", /^f\.yaml:1: extensions: .*no extensions: section/],
  [
    "an unknown top field",
    "extensions:\n  sysexts: []\n",
    /^f\.yaml:2: extensions\.sysexts: unknown field/,
  ],
  [
    "a bad profile",
    "sysext:\n  - source: file:///a.raw\n    profiles: [active, actve]\n",
    /^f\.yaml:3: sysext\[0\]\.profiles\[1\]: "actve" is not a profile/,
  ],
  [
    "a missing source",
    "extensions:\n  sysext:\n    - profiles: [active]\n",
    /^f\.yaml:3: extensions\.sysext\[0\]\.source: is missing/,
  ],
  [
    "a missing profiles list",
    "sysext:\n  - source: file:///a.raw\n",
    /^f\.yaml:2: sysext\[0\]\.profiles: is missing/,
  ],
  [
    "an unpinned https source",
    "sysext:\n  - source: file:///a.raw\n    profiles: [common]\n  - source: https://x.org/b.raw\n    profiles: [common]\n",
    /^f\.yaml:4: sysext\[1\]\.source: an http\(s\): source must be pinned/,
  ],
  [
    "an unpinned oci source",
    "sysext:\n  - source: oci://r.example/k3s:v1\n    profiles: [common]\n",
    /^f\.yaml:2: sysext\[0\]\.source: an oci: source must be pinned by digest/,
  ],
  [
    "a bad sha256",
    "sysext:\n  - source: https://x.org/b.raw\n    sha256: abc\n    profiles: [common]\n",
    /^f\.yaml:3: sysext\[0\]\.sha256: must be 64 hex digits/,
  ],
  [
    "an ftp source",
    "sysext:\n  - source: ftp://x.org/b.raw\n    profiles: [common]\n",
    /^f\.yaml:2: sysext\[0\]\.source: "ftp:\/\/x\.org\/b\.raw" is not a file:/,
  ],
  [
    "now that is not a boolean",
    "sysext:\n  - source: file:///a.raw\n    profiles: [common]\n    now: yes please\n",
    /^f\.yaml:4: sysext\[0\]\.now: must be true or false/,
  ],
  ["prune as a string", "prune: 'true'\n", /^f\.yaml:1: prune: must be true or false/],
  ["a bad policy", "policy: sined\n", /^f\.yaml:1: policy: .*sined/],
  [
    "a relative trust path",
    "trust: [fleet.crt]\n",
    /^f\.yaml:1: trust\[0\]: must be an absolute path/,
  ],
  [
    "an unknown entry field",
    "sysext:\n  - source: file:///a.raw\n    profiles: [common]\n    profile: active\n",
    /^f\.yaml:4: sysext\[0\]\.profile: unknown field/,
  ],
  ["a duplicate key", "prune: true\nprune: false\n", /^f\.yaml:2: invalid YAML/],
];

for (const [what, text, pattern] of ERRORS) {
  test(`schema error: ${what}`, async () => {
    await assert.rejects(parseApplySpec(text, "f.yaml"), (e: Error & { code?: string }) => {
      assert.equal(e.code, "config");
      assert.match(e.message, pattern);
      return true;
    });
  });
}

test("catalog entries: strings, {name, version}, catalogs: (the Kairos 4487 syntax)", async () => {
  const spec = await parseApplySpec(
    `#cloud-config
extensions:
  catalogs: [https://example.org/releases.json, file:///srv/releases.json]
  sysext:
    - "gpg@>= 2.5, < 3"
    - curl
    - k3s@v1.32.0
    - name: fwupd
      version: "^2.1"
      profiles: [common]
      now: true
    - name: htop
    - source: oci://r.example/k3s@sha256:${"b".repeat(64)}
      profiles: [active]
  confext:
    - net@1.0.0
`,
    "node.yaml",
  );
  assert.deepEqual(spec.catalogs, [
    "https://example.org/releases.json",
    "file:///srv/releases.json",
  ]);
  assert.equal(spec.file, "node.yaml");
  assert.deepEqual(
    spec.entries.map((e) => [e.kind, e.from, e.name, e.requested, e.profiles, e.now, e.line]),
    [
      ["sysext", "catalog", "gpg", ">= 2.5, < 3", ["active", "passive"], false, 5],
      ["sysext", "catalog", "curl", undefined, ["active", "passive"], false, 6],
      ["sysext", "catalog", "k3s", "v1.32.0", ["active", "passive"], false, 7],
      ["sysext", "catalog", "fwupd", "^2.1", ["common"], true, 8],
      ["sysext", "catalog", "htop", undefined, ["active", "passive"], false, 12],
      ["sysext", "uri", undefined, undefined, ["active"], false, 13],
      ["confext", "catalog", "net", "1.0.0", ["active", "passive"], false, 16],
    ],
  );
  assert.equal(spec.entries[5]?.source, `oci://r.example/k3s@sha256:${"b".repeat(64)}`);
  assert.equal("requested" in (spec.entries[1] ?? {}), false, "a bare name asks for latest");
});

test("without catalogs: the node's defaults are used (spec.catalogs stays unset)", async () => {
  const spec = await parseApplySpec("sysext: [gpg]\n", "x.yaml");
  assert.equal(spec.catalogs, undefined);
  assert.equal(spec.entries[0]?.name, "gpg");
});

const CATALOG_ERRORS: [string, string, RegExp][] = [
  [
    "name and source in one entry",
    `sysext:\n  - name: gpg\n    source: oci://r.example/g@sha256:${"c".repeat(64)}\n`,
    /^f\.yaml:3: sysext\[0\]\.source: an entry has either name: .* or source: .*not both/,
  ],
  [
    "an unsafe string entry",
    "sysext:\n  - ok\n  - ../etc@1\n",
    /^f\.yaml:3: sysext\[1\]: "\.\.\/etc" is not a usable extension name/,
  ],
  [
    "a URI as a string entry",
    "extensions:\n  sysext:\n    - oci://r.example/g:1\n",
    /^f\.yaml:3: extensions\.sysext\[0\]: "oci:\/\/r\.example\/g:1" is a URI or a path/,
  ],
  ["an empty version after @", "sysext:\n  - gpg@\n", /^f\.yaml:2: sysext\[0\]: .*empty version/],
  ["no name before @", "sysext:\n  - '@1.0'\n", /^f\.yaml:2: sysext\[0\]: .*no extension name/],
  [
    "an unquoted numeric version",
    "sysext:\n  - name: gpg\n    version: 2.10\n",
    /^f\.yaml:3: sysext\[0\]\.version: must be a string; quote it/,
  ],
  [
    "a version in name:",
    "sysext:\n  - name: gpg@2\n",
    /^f\.yaml:2: sysext\[0\]\.name: "gpg@2" holds "@"/,
  ],
  [
    "version: on a source entry",
    "sysext:\n  - source: file:///a.raw\n    version: '1'\n    profiles: [common]\n",
    /^f\.yaml:3: sysext\[0\]\.version: only a name: entry takes version:/,
  ],
  [
    "sha256: on a name entry",
    `sysext:\n  - name: gpg\n    sha256: ${SHA}\n`,
    /^f\.yaml:3: sysext\[0\]\.sha256: only a source: entry takes sha256:/,
  ],
  [
    "a catalog that is not https, file or oci",
    "extensions:\n  catalogs:\n    - http://example.org/releases.json\n",
    /^f\.yaml:3: extensions\.catalogs\[0\]: "http:\/\/example\.org\/releases\.json" is not an https:, file: or oci: URL/,
  ],
  [
    "catalogs: not a list",
    "catalogs: https://example.org/releases.json\n",
    /^f\.yaml:1: catalogs: must be a list/,
  ],
  [
    "a bad profile on a name entry",
    "sysext:\n  - name: gpg\n    profiles: [activ]\n",
    /^f\.yaml:3: sysext\[0\]\.profiles\[0\]: "activ" is not a profile/,
  ],
];

for (const [what, text, pattern] of CATALOG_ERRORS) {
  test(`schema error: ${what}`, async () => {
    await assert.rejects(parseApplySpec(text, "f.yaml"), (e: Error & { code?: string }) => {
      assert.equal(e.code, "config");
      assert.match(e.message, pattern);
      return true;
    });
  });
}

// A cloud-config as Kairos writes it (kairos-io/kairos 4487): install.extensions beside
// extensions: with its catalogs and ignore_signatures.
test("a Kairos cloud-config: install.extensions entries, catalogs, ignore_signatures", async () => {
  const spec = await parseApplySpec(
    `#cloud-config
install:
  device: auto
  reboot: true
  extensions:
    - fwupd
    - "gpg@>= 2.5, < 3"
    - name: drbd
      version: ">= 9"
    - name: vendor-tool
    - oci://registry.example/tools/k9s:1.0
    - docker://registry.example/tools/htop:2
    - container://registry.example/tools/jq@sha256:${"c".repeat(64)}
    - https://example.org/ext/tree.sysext.raw
    - /usr/local/share/ext/local.sysext.raw
extensions:
  catalogs:
    - https://catalog.example/releases.json
  ignore_signatures: true
  sysext:
    - source: docker://registry.example/tools/own@sha256:${"d".repeat(64)}
      profiles: [common]
`,
    "cloud.yaml",
  );
  assert.equal(spec.policy, "any");
  assert.deepEqual(spec.catalogs, ["https://catalog.example/releases.json"]);
  const own = spec.entries[0]!;
  assert.equal(own.field, "extensions.sysext[0]");
  assert.equal(own.source, `oci://registry.example/tools/own@sha256:${"d".repeat(64)}`);
  const installed = spec.entries.slice(1);
  assert.deepEqual(
    installed.map((e) => [e.field, e.line, e.kind, e.profiles, e.now]),
    [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => [
      `install.extensions[${i}]`,
      [6, 7, 8, 10, 11, 12, 13, 14, 15][i],
      "sysext",
      ["active", "passive"],
      false,
    ]),
  );
  assert.deepEqual(
    installed.map((e) => (e.from === "catalog" ? [e.name, e.requested] : [e.source])),
    [
      ["fwupd", undefined],
      ["gpg", ">= 2.5, < 3"],
      ["drbd", ">= 9"],
      ["vendor-tool", undefined],
      ["oci://registry.example/tools/k9s:1.0"],
      ["oci://registry.example/tools/htop:2"],
      [`oci://registry.example/tools/jq@sha256:${"c".repeat(64)}`],
      ["https://example.org/ext/tree.sysext.raw"],
      ["file:///usr/local/share/ext/local.sysext.raw"],
    ],
  );
  // install.extensions alone is a cloud-config too; other install: keys are Kairos's.
  const alone = await parseApplySpec("install:\n  auto: true\n  extensions: [fwupd]\n", "c.yaml");
  assert.equal(alone.entries.length, 1);
  assert.equal(alone.policy, undefined);
  // ignore_signatures: false changes nothing.
  const strict = await parseApplySpec(
    "extensions:\n  ignore_signatures: false\n  sysext: [fwupd]\n",
    "c.yaml",
  );
  assert.equal(strict.policy, undefined);
});

const CLOUD_CONFIG_ERRORS: [string, string, RegExp][] = [
  [
    "an unknown key under extensions:",
    "install:\n  extensions: [fwupd]\nextensions:\n  catalogs: []\n  ignore_signature: true\n",
    /^f\.yaml:5: extensions\.ignore_signature: unknown field; expected one of .*ignore_signatures/,
  ],
  [
    "an unknown key in an install.extensions mapping",
    "install:\n  extensions:\n    - name: fwupd\n      profiles: [common]\n",
    /^f\.yaml:4: install\.extensions\[0\]\.profiles: unknown field; expected one of name, version/,
  ],
  [
    "a mapping without name:",
    "install:\n  extensions:\n    - version: '1'\n",
    /^f\.yaml:3: install\.extensions\[0\]\.name: is missing/,
  ],
  [
    "an unsupported scheme",
    "install:\n  extensions:\n    - fwupd\n    - ftp://x.org/a.raw\n",
    /^f\.yaml:4: install\.extensions\[1\]: "ftp:\/\/x\.org\/a\.raw" is not a file:, http:, https: or oci: URI or an absolute path/,
  ],
  [
    "install.extensions not a list",
    "install:\n  extensions: fwupd\n",
    /^f\.yaml:2: install\.extensions: must be a list/,
  ],
  [
    "ignore_signatures with policy: signed",
    "extensions:\n  policy: signed\n  ignore_signatures: true\n",
    /^f\.yaml:3: extensions\.ignore_signatures: true means the policy any, but policy: is signed/,
  ],
  [
    "ignore_signatures not a boolean",
    "extensions:\n  ignore_signatures: yes\n",
    /^f\.yaml:2: extensions\.ignore_signatures: must be true or false/,
  ],
  [
    "a relative path",
    "install:\n  extensions:\n    - ./local.sysext.raw\n",
    /^f\.yaml:3: install\.extensions\[0\]: .*is not a usable extension name/,
  ],
  [
    "a numeric version",
    "install:\n  extensions:\n    - name: gpg\n      version: 2.10\n",
    /^f\.yaml:4: install\.extensions\[0\]\.version: must be a string; quote it/,
  ],
];

for (const [what, text, pattern] of CLOUD_CONFIG_ERRORS) {
  test(`cloud-config error: ${what}`, async () => {
    await assert.rejects(parseApplySpec(text, "f.yaml"), (e: Error & { code?: string }) => {
      assert.equal(e.code, "config");
      assert.match(e.message, pattern);
      return true;
    });
  });
}

test("health-check: on a name: entry, as text (no shell) or a list; refused on a source: entry", async () => {
  const spec = await parseApplySpec(
    `sysext:
  - name: k3s
    now: true
    health-check: /usr/bin/curl -fsS 'http://127.0.0.1:6443/readyz'
  - name: tools
    health-check: [sh, -c, "tools --selftest || exit 3"]
  - name: plain
`,
    "h.yaml",
  );
  assert.deepEqual(
    spec.entries.map((e) => (e.from === "catalog" ? e.healthCheck : "uri")),
    [
      ["/usr/bin/curl", "-fsS", "http://127.0.0.1:6443/readyz"],
      ["sh", "-c", "tools --selftest || exit 3"],
      undefined,
    ],
  );
  for (const [text, why] of [
    [
      "sysext:\n  - name: k3s\n    health-check: curl x; reboot\n",
      /h\.yaml:3: sysext\[0\]\.health-check: .*would mean something to a shell/,
    ],
    [
      "sysext:\n  - name: k3s\n    health-check: [./check]\n",
      /h\.yaml:3: sysext\[0\]\.health-check: .*relative path/,
    ],
    [
      `sysext:\n  - source: https://x.example/a.raw\n    sha256: ${SHA}\n    profiles: [common]\n    health-check: /bin/true\n`,
      /only a name: entry takes health-check:/,
    ],
  ] as const)
    await assert.rejects(parseApplySpec(text, "h.yaml"), (e: Error) => {
      assert.match(e.message, why);
      return true;
    });
});
