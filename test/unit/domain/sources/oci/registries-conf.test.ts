import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parseReference } from "../../../../../src/domain/oci/reference.js";
import {
  findRegistry,
  insecureHosts,
  loadRegistriesConf,
  mergeRegistriesConf,
  parseRegistriesConf,
  prefixMatch,
  pullSources,
  type RegistriesConf,
} from "../../../../../src/domain/sources/oci/registries-conf.js";
import { ExtctlError } from "../../../../../src/util/errors.js";
import { Root } from "../../../../../src/util/root.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;

function conf(text: string): RegistriesConf {
  return mergeRegistriesConf([{ file: "/r.conf", conf: parseRegistriesConf(text, "/r.conf") }]);
}

function sources(c: RegistriesConf, reference: string) {
  return pullSources(c, parseReference(reference)).map((s) => ({
    ref: `${s.ref.registry}/${s.ref.repository}${s.ref.tag ? `:${s.ref.tag}` : ""}${s.ref.digest ? `@${s.ref.digest}` : ""}`,
    insecure: s.insecure,
    mirror: s.mirror,
  }));
}

function refuses(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseRegistriesConf(text, "/r.conf"),
    (e: unknown) => e instanceof ExtctlError && e.code === "config" && pattern.test(e.message),
  );
}

test("the man page's example: mirrors in order, then the rewritten origin", () => {
  const c = conf(`
unqualified-search-registries = ["example.com"]

[[registry]]
prefix = "example.com/foo"
insecure = false
blocked = false
location = "internal-registry-for-example.com/bar"

[[registry.mirror]]
location = "example-mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "example-mirror-1.local/mirrors/foo"
insecure = true
`);
  assert.deepEqual(c.unqualifiedSearchRegistries, ["example.com"]);
  assert.deepEqual(sources(c, "example.com/foo/image:latest"), [
    { ref: "example-mirror-0.local/mirror-for-foo/image:latest", insecure: false, mirror: true },
    { ref: "example-mirror-1.local/mirrors/foo/image:latest", insecure: true, mirror: true },
    { ref: "internal-registry-for-example.com/bar/image:latest", insecure: false, mirror: false },
  ]);
  // Outside the prefix: the reference alone.
  assert.deepEqual(sources(c, "example.com/foobar/image:1"), [
    { ref: "example.com/foobar/image:1", insecure: false, mirror: false },
  ]);
});

test("prefixes match at component boundaries only", () => {
  assert.equal(prefixMatch("example.com/foo/x:1", "example.com"), 11);
  assert.equal(prefixMatch("example.com/foo/x:1", "example.com/foo"), 15);
  assert.equal(prefixMatch("example.com/foo/x:1", "example.com/foo/x"), 17);
  assert.equal(prefixMatch("example.com/foo/x:1", "example.com/foo/x:1"), 19);
  assert.equal(prefixMatch(`example.com/foo/x:1@${DIGEST}`, "example.com/foo/x:1"), 19);
  assert.equal(prefixMatch(`example.com/foo/x@${DIGEST}`, "example.com/foo/x"), 17);
  assert.equal(prefixMatch("example.com/foobar/x:1", "example.com/foo"), -1);
  assert.equal(prefixMatch("example.com.evil/x:1", "example.com"), -1);
  // A bare host is not a prefix of the same host with a port.
  assert.equal(prefixMatch("localhost:5000/x:1", "localhost"), -1);
  assert.equal(prefixMatch("localhost:5000/x:1", "localhost:5000"), 14);
  assert.equal(prefixMatch("example.com/foo/x:10", "example.com/foo/x:1"), -1);
});

test("a wildcard prefix matches subdomains (any port), never the domain itself", () => {
  assert.equal(prefixMatch("a.example.com/x:1", "*.example.com"), 13);
  assert.equal(prefixMatch("a.b.example.com:5000/x:1", "*.example.com"), 20);
  assert.equal(prefixMatch("example.com/x:1", "*.example.com"), -1);
  assert.equal(prefixMatch("aexample.com/x:1", "*.example.com"), -1);
  assert.equal(prefixMatch("a.example.com.evil/x:1", "*.example.com"), -1);
  assert.equal(prefixMatch("evil.org/a.example.com/x:1", "*.example.com"), -1);
  const c = conf(`
[[registry]]
prefix = "*.example.com"
insecure = true
[[registry.mirror]]
location = "mirror.local"
`);
  assert.deepEqual(sources(c, "blah.example.com/foo/img:1"), [
    { ref: "mirror.local/foo/img:1", insecure: false, mirror: true },
    { ref: "blah.example.com/foo/img:1", insecure: true, mirror: false },
  ]);
});

test("the longest prefix wins; an exact host beats a wildcard of the same length", () => {
  const c = conf(`
[[registry]]
location = "example.com"
insecure = true
[[registry]]
prefix = "example.com/team/app"
location = "mirror.local/app"
[[registry]]
prefix = "*.example.org"
blocked = true
[[registry]]
location = "ok.example.org"
`);
  const pick = (r: string) => findRegistry(c, parseReference(r))?.entry.prefix;
  assert.equal(pick("example.com/team/app:1"), "example.com/team/app");
  assert.equal(pick("example.com/team/app/sub:1"), "example.com/team/app");
  assert.equal(pick("example.com/team/other:1"), "example.com");
  assert.equal(pick("ok.example.org/x:1"), "ok.example.org");
  assert.equal(pick("bad.example.org/x:1"), "*.example.org");
  assert.equal(pick("quay.io/x:1"), undefined);
});

test("a blocked entry refuses the pull, naming the file and line", () => {
  const c = conf(`
# nothing from here
[[registry]]
prefix = "evil.example"
location = "evil.example"
blocked = true
`);
  assert.throws(
    () => pullSources(c, parseReference("oci://evil.example/x/y:1")),
    (e: unknown) =>
      e instanceof ExtctlError &&
      e.code === "policy" &&
      /oci:\/\/evil\.example\/x\/y:1 is blocked by \/r\.conf:3 \(prefix "evil\.example", blocked = true\)/.test(
        e.message,
      ),
  );
});

test("pull-from-mirror and mirror-by-digest-only choose mirrors by how the image is named", () => {
  const c = conf(`
[[registry]]
location = "origin.example"
[[registry.mirror]]
location = "digests.local"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.local"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "all.local"

[[registry]]
location = "old.example"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.local"
`);
  assert.deepEqual(
    sources(c, "origin.example/x:1").map((s) => s.ref),
    ["tags.local/x:1", "all.local/x:1", "origin.example/x:1"],
  );
  assert.deepEqual(
    sources(c, `origin.example/x@${DIGEST}`).map((s) => s.ref),
    [`digests.local/x@${DIGEST}`, `all.local/x@${DIGEST}`, `origin.example/x@${DIGEST}`],
  );
  assert.deepEqual(
    sources(c, "old.example/x:1").map((s) => s.ref),
    ["old.example/x:1"],
  );
  assert.deepEqual(
    sources(c, `old.example/x@${DIGEST}`).map((s) => s.ref),
    [`m.local/x@${DIGEST}`, `old.example/x@${DIGEST}`],
  );
});

test("docker.io references match with their library/ namespace, as the man page says", () => {
  const c = conf(`
[[registry]]
prefix = "docker.io/library"
location = "hub-mirror.local/library"
`);
  assert.deepEqual(sources(c, "alpine:3"), [
    { ref: "hub-mirror.local/library/alpine:3", insecure: false, mirror: false },
  ]);
});

test("version 1 lists mark hosts insecure or blocked", () => {
  const c = conf(`
[registries.search]
registries = ['registry1.com']
[registries.insecure]
registries = ['registry3.com']
[registries.block]
registries = ['registry.untrusted.com', 'registry3.com']
`);
  assert.deepEqual(c.unqualifiedSearchRegistries, ["registry1.com"]);
  assert.deepEqual(
    c.entries.map((e) => [e.prefix, e.insecure, e.blocked]),
    [
      ["registry3.com", true, true],
      ["registry.untrusted.com", false, true],
    ],
  );
  assert.throws(
    () =>
      parseRegistriesConf("[registries.insecure]\nregistries = ['a.b']\n", "/d.conf", {
        dropIn: true,
      }),
    /\/d\.conf:1: a drop-in file must use the version 2 format/,
  );
  refuses(
    "[registries.block]\nregistries = ['a.b']\n[[registry]]\nlocation = 'c.d'\n",
    /\/r\.conf:1: mixes the version 1/,
  );
});

test("entries that cannot mean anything are refused with file:line", () => {
  refuses(
    "[[registry]]\ninsecure = true\n",
    /^\/r\.conf:1: a \[\[registry\]\] needs a prefix or a location/,
  );
  refuses(
    '[[registry]]\nlocation = "https://x.example"\n',
    /^\/r\.conf:2: location = "https:\/\/x\.example" has a scheme/,
  );
  refuses(
    '[[registry]]\nlocation = "x.example"\ninsecure = "yes"\n',
    /^\/r\.conf:3: insecure must be true or false/,
  );
  refuses(
    '[[registry]]\nprefix = "a.*.example"\nlocation = "x"\n',
    /:2: .*a wildcard may only start a prefix/,
  );
  refuses(
    '[[registry]]\nprefix = "*.example.com"\nlocation = "x.example"\n',
    /:1: the wildcard prefix .* cannot have a location/,
  );
  refuses(
    '[[registry]]\nlocation = "x.example"\n[[registry.mirror]]\ninsecure = true\n',
    /^\/r\.conf:3: a \[\[registry\.mirror\]\] needs a location/,
  );
  refuses(
    '[[registry]]\nlocation = "x.example"\n[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "some"\n',
    /:5: pull-from-mirror = "some"/,
  );
  refuses(
    '[[registry]]\nlocation = "x.example"\n\n[[registry]]\nprefix = "x.example"\nlocation = "y.example"\n',
    /^\/r\.conf:4: the prefix "x\.example" is already configured at \/r\.conf:1/,
  );
  refuses('[[registry]]\nlocation = "x.example//a"\n', /is not a host\[:port\]\[\/path\]/);
  refuses("registry = 1\n", /registry must be an array of tables/);
});

test("unknown keys and tables are ignored (aliases, short-name-mode, credential-helpers)", () => {
  const c = conf(`
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]
[aliases]
"alpine" = "docker.io/library/alpine"
[[registry]]
location = "x.example"
some-future-key = 3
`);
  assert.deepEqual(
    c.entries.map((e) => e.prefix),
    ["x.example"],
  );
});

test("a rewrite that makes no valid reference is an error naming the entry", () => {
  const c = conf('[[registry]]\nprefix = "x.example/app"\nlocation = "Bad.Example/UPPER"\n');
  assert.throws(
    () => pullSources(c, parseReference("x.example/app:1")),
    (e: unknown) =>
      e instanceof ExtctlError &&
      e.code === "config" &&
      /^\/r\.conf:1: oci:\/\/x\.example\/app:1 rewritten by the prefix "x\.example\/app" is "bad\.example\/UPPER:1"/.test(
        e.message,
      ),
  );
});

test("insecure hosts: bare-host entries and mirrors lend their flag to redirects and realms", () => {
  const c = conf(`
[[registry]]
location = "plain.example:5000"
insecure = true
[[registry.mirror]]
location = "m.local:5000"
insecure = true
[[registry.mirror]]
location = "n.local/path"
insecure = true
[[registry]]
prefix = "team.example/x"
location = "team.example/x"
insecure = true
`);
  assert.deepEqual(insecureHosts(c), ["plain.example:5000", "m.local:5000"]);
});

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), "extctl-regconf-"));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test("loading: registries.conf, then registries.conf.d/*.conf in lexical order, later overriding", async () => {
  await withRoot(async (root) => {
    const dir = path.join(root, "etc/containers/registries.conf.d");
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(root, "etc/containers/registries.conf"),
      'unqualified-search-registries = ["a.example"]\n[[registry]]\nlocation = "x.example"\ninsecure = true\n[[registry]]\nlocation = "keep.example"\n',
    );
    await writeFile(
      path.join(dir, "20-b.conf"),
      '[[registry]]\nlocation = "x.example"\nblocked = true\n',
    );
    await writeFile(
      path.join(dir, "10-a.conf"),
      '[[registry]]\nlocation = "x.example"\ninsecure = false\n',
    );
    await writeFile(path.join(dir, "30-c.conf.bak"), "not toml at all [");
    await mkdir(path.join(dir, "sub.conf"));
    // An absolute link is resolved inside the root.
    await writeFile(
      path.join(root, "etc/extra"),
      'unqualified-search-registries = ["b.example"]\n',
    );
    await symlink("/etc/extra", path.join(dir, "40-link.conf"));
    const c = await loadRegistriesConf({ root: new Root(root), env: {} });
    assert.deepEqual(c.files, [
      path.join(root, "etc/containers/registries.conf"),
      path.join(dir, "10-a.conf"),
      path.join(dir, "20-b.conf"),
      path.join(dir, "40-link.conf"),
    ]);
    assert.deepEqual(c.unqualifiedSearchRegistries, ["b.example"]);
    const x = c.entries.find((e) => e.prefix === "x.example");
    assert.deepEqual(
      [x?.insecure, x?.blocked, x?.where],
      [false, true, `${path.join(dir, "20-b.conf")}:1`],
    );
    assert.ok(c.entries.some((e) => e.prefix === "keep.example"));
  });
});

test("loading: $CONTAINERS_REGISTRIES_CONF alone, a host path; missing files mean no configuration", async () => {
  await withRoot(async (root) => {
    const none = await loadRegistriesConf({ root: new Root(root), env: {} });
    assert.deepEqual(none, { files: [], entries: [], unqualifiedSearchRegistries: [] });
    await mkdir(path.join(root, "etc/containers/registries.conf.d"), { recursive: true });
    await writeFile(
      path.join(root, "etc/containers/registries.conf.d/a.conf"),
      '[[registry]]\nlocation = "d.example"\n',
    );
    const own = path.join(root, "own.conf");
    await writeFile(own, '[[registry]]\nlocation = "e.example"\n');
    const c = await loadRegistriesConf({
      root: new Root(root),
      env: { CONTAINERS_REGISTRIES_CONF: own },
    });
    assert.deepEqual(c.files, [own]);
    assert.deepEqual(
      c.entries.map((e) => e.prefix),
      ["e.example"],
    );
    await assert.rejects(
      loadRegistriesConf({
        root: new Root(root),
        env: { CONTAINERS_REGISTRIES_CONF: path.join(root, "nope") },
      }),
      /CONTAINERS_REGISTRIES_CONF names .*nope, which does not exist/,
    );
  });
});

test("loading: a syntax error names the file and line; a FIFO is refused, not read", async () => {
  await withRoot(async (root) => {
    await mkdir(path.join(root, "etc/containers"), { recursive: true });
    const file = path.join(root, "etc/containers/registries.conf");
    await writeFile(file, '[[registry]]\nlocation = "x.example\n');
    await assert.rejects(
      loadRegistriesConf({ root: new Root(root), env: {} }),
      new RegExp(`^ExtctlError: ${file.replace(/[.]/g, "\\.")}:2: a string is not closed`),
    );
  });
});

test("prefixes and locations are compared in the canonical form: no other spelling gets past blocked", () => {
  const c = conf(
    '[[registry]]\nprefix = "LOCALHOST:05001"\nblocked = true\n\n[[registry]]\nprefix = "127.0.0.1:5001/exts"\nblocked = true\n\n[[registry]]\nprefix = "*.Example.COM"\nblocked = true\n',
  );
  assert.deepEqual(
    c.entries.map((e) => e.prefix),
    ["localhost:5001", "127.0.0.1:5001/exts", "*.example.com"],
  );
  for (const ref of [
    "localhost:5001/a:1",
    "LOCALHOST:5001/a:1",
    "localhost:05001/a:1",
    "127.0.0.1:5001/exts/a:1",
    "127.1:5001/exts/a:1",
    "2130706433:5001/exts/a:1",
    "0x7f000001:5001/exts/a:1",
    "127.000.000.001:5001/exts/a:1",
    "[::ffff:127.0.0.1]:5001/exts/a:1",
    "127.0.0.1:05001/exts/a:1",
    "REG.example.com/a:1",
  ])
    assert.throws(() => pullSources(c, parseReference(ref)), /blocked/, ref);
  refuses(
    '[[registry]]\nprefix = "300.1:5000"\nblocked = true\n',
    /the host "300\.1:5000" looks like an IPv4/,
  );
});
