// `extctl apply` with catalog entries (the Kairos 4487 syntax, issue 14 item 9), end to end: real
// images pushed with `extctl publish` to a real docker-registry, a Kairos-format catalog on a real
// HTTPS server with a throwaway CA, the real CLI on a throwaway root. `NAME@^1` installs the best
// 1.x, a newer 1.x in the catalog is an upgrade on the next apply, a pin stays, --dry-run plans
// and changes nothing, errors name the file's line, prune takes an extension's versions too.
import assert from "node:assert/strict";
import { readFile, readdir, readlink, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl, type CliResult } from "../helpers/cli.js";
import { catalogFixture, ok, sha256Of, type Published } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
const PEERS = ["docker-registry", "mksquashfs", "openssl"];

interface Result {
  dryRun: boolean;
  changed: boolean;
  steps: { step: string; description: string }[];
}

const tags = (...published: Published[]) =>
  published.map((p) => ({ version: p.version, published: p }));

test("apply installs NAME@^1 from the catalog, upgrades when the catalog offers a newer 1.x, keeps a pin, plans with --dry-run", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const hello = {
    "1.0.0": await f.publishVersion("hello", "1.0.0"),
    "1.1.0": await f.publishVersion("hello", "1.1.0"),
    "2.0.0": await f.publishVersion("hello", "2.0.0"),
  };
  const pinme = {
    "1.0.0": await f.publishVersion("pinme", "1.0.0"),
    "1.1.0": await f.publishVersion("pinme", "1.1.0"),
  };
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({
      hello: { latest: "2.0.0", tags: tags(...Object.values(hello)) },
      pinme: { latest: "1.1.0", tags: tags(...Object.values(pinme)) },
    }),
  );
  const root = await tempRoot(t);
  const dir = await tempDir(t);
  const spec = path.join(dir, "node.yaml");
  const write = (entries: string) =>
    writeFile(
      spec,
      `#cloud-config
hostname: node1
extensions:
  catalogs: [${url}]
  sysext:
${entries}  prune: true
`,
    );
  const apply = async (...args: string[]) =>
    runExtctl(["--root", root, "apply", spec, "--refresh", "none", "--json", ...f.net, ...args]);
  const result = (r: CliResult, what: string) => JSON.parse(ok(r, what).stdout) as Result;
  const image = (name: string) => path.join(root, STORE, `${name}.raw`);
  const both = `    - "hello@^1"\n    - name: pinme\n      version: "1.0.0"\n      profiles: [common]\n`;
  await write(both);

  // The plan on an empty node: two installs by name, with the versions the catalog gives.
  const plan = result(await apply("--dry-run"), "first plan");
  assert.equal(plan.dryRun, true);
  assert.equal(plan.changed, true);
  const described = plan.steps.map((s) => s.description);
  assert.ok(
    described.includes(`install sysext hello 1.1.0 (^1) from ${url}`),
    described.join("\n"),
  );
  assert.ok(described.includes(`install sysext pinme 1.0.0 (1.0.0) from ${url}`));
  assert.ok(described.includes("enable sysext hello.raw in active"));
  assert.ok(described.includes("enable sysext hello.raw in passive"));
  assert.ok(described.includes("enable sysext pinme.raw in common"));
  await assert.rejects(stat(path.join(root, STORE)), "a dry run makes no store");

  // Apply: ^1 is 1.1.0 (not latest 2.0.0), enabled where Kairos enables (active and passive).
  const first = result(await apply(), "first apply");
  assert.equal(first.changed, true);
  assert.equal(await sha256Of(image("hello")), hello["1.1.0"].sha256);
  assert.equal(await sha256Of(image("pinme")), pinme["1.0.0"].sha256);
  for (const profile of ["active", "passive"])
    assert.equal(await readlink(path.join(root, STORE, profile, "hello.raw")), "../hello.raw");
  assert.equal(await readlink(path.join(root, STORE, "common", "pinme.raw")), "../pinme.raw");
  await assert.rejects(readlink(path.join(root, STORE, "common", "hello.raw")));

  // Again: nothing changes, every catalog entry is up to date.
  const again = result(await apply(), "second apply");
  assert.equal(again.changed, false, JSON.stringify(again.steps));
  assert.deepEqual(
    again.steps.map((s) => s.step),
    ["up-to-date", "up-to-date"],
  );

  // The catalog publishes 1.2.0 (and pinme 1.2.0, which the pin must not take).
  const hello12 = await f.publishVersion("hello", "1.2.0");
  const pinme12 = await f.publishVersion("pinme", "1.2.0");
  f.serveCatalog(
    "releases.json",
    f.catalogJson(
      {
        hello: { latest: "2.0.0", tags: tags(...Object.values(hello), hello12) },
        pinme: { latest: "1.2.0", tags: tags(...Object.values(pinme), pinme12) },
      },
      new Date(Date.now() + 1000).toISOString(),
    ),
  );
  const plan2 = result(await apply("--dry-run"), "second plan");
  assert.deepEqual(
    plan2.steps.map((s) => s.description),
    ["upgrade sysext hello 1.1.0 -> 1.2.0 (^1)", "sysext pinme 1.0.0 is up to date (1.0.0)"],
  );
  assert.equal(await sha256Of(image("hello")), hello["1.1.0"].sha256, "the plan changed nothing");

  const upgraded = result(await apply(), "apply the upgrade");
  assert.equal(upgraded.changed, true);
  assert.match(upgraded.steps[0]?.description ?? "", /^upgraded sysext hello 1\.1\.0 -> 1\.2\.0/);
  assert.equal(await sha256Of(image("hello")), hello12.sha256, "^1 now takes 1.2.0");
  assert.equal(await sha256Of(image("pinme")), pinme["1.0.0"].sha256, "the pin stays");
  for (const profile of ["active", "passive"])
    assert.equal(await readlink(path.join(root, STORE, profile, "hello.raw")), "../hello.raw");
  const kept = await readdir(path.join(root, STORE, ".versions/hello"));
  assert.ok(
    kept.some((k) => k.startsWith("1.1.0-")),
    "the old version is kept",
  );

  // A changed constraint in the file is recorded and followed: hello@1.0.0 goes down to 1.0.0.
  await write(
    `    - hello@1.0.0\n    - name: pinme\n      version: "1.0.0"\n      profiles: [common]\n`,
  );
  const pinned = result(await apply(), "pin hello");
  assert.match(pinned.steps[0]?.description ?? "", /hello 1\.2\.0 -> 1\.0\.0/);
  assert.equal(await sha256Of(image("hello")), hello["1.0.0"].sha256);
  const record = JSON.parse(
    await readFile(path.join(root, STORE, ".versions/hello/record.json"), "utf8"),
  ) as { requested?: string; catalogs: string[] };
  assert.equal(record.requested, "1.0.0");
  assert.deepEqual(record.catalogs, [url]);

  // Errors name the file's line: a name no catalog has, a constraint nothing satisfies.
  await write(`    - hello@1.0.0\n    - nosuch@^1\n`);
  const unknown = await apply();
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /node\.yaml:7: extensions\.sysext\[1\]: .*nosuch/);
  await write(`    - hello@^9\n`);
  const unsatisfied = await apply("--dry-run");
  assert.notEqual(unsatisfied.code, 0);
  assert.match(unsatisfied.stderr, /node\.yaml:6: extensions\.sysext\[0\]: .*\^9/);
  assert.equal(await sha256Of(image("hello")), hello["1.0.0"].sha256, "errors change nothing");
  assert.equal(await sha256Of(image("pinme")), pinme["1.0.0"].sha256);

  // Prune: pinme is no longer named; it goes with its kept versions. hello (named) stays.
  await write(`    - hello@1.0.0\n`);
  const pruned = result(await apply(), "prune");
  assert.ok(
    pruned.steps.some((s) => s.description === "remove sysext pinme.raw (not listed; prune)"),
    JSON.stringify(pruned.steps),
  );
  await assert.rejects(stat(image("pinme")));
  await assert.rejects(stat(path.join(root, STORE, ".versions/pinme")));
  await assert.rejects(readlink(path.join(root, STORE, "common", "pinme.raw")));
  assert.equal(await sha256Of(image("hello")), hello["1.0.0"].sha256);
  await stat(path.join(root, STORE, ".versions/hello"));
});

test("an upgrade apply cannot use leaves the old version current and enabled, and says why", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const one = await f.publishVersion("hello", "1.0.0");
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({ hello: { latest: "1.0.0", tags: tags(one) } }),
  );
  const root = await tempRoot(t);
  const dir = await tempDir(t);
  const spec = path.join(dir, "node.yaml");
  await writeFile(spec, `extensions:\n  catalogs: [${url}]\n  sysext:\n    - hello@^1\n`);
  const apply = () => runExtctl(["--root", root, "apply", spec, "--refresh", "none", ...f.net]);
  ok(await apply(), "install");
  const image = path.join(root, STORE, "hello.raw");
  assert.equal(await sha256Of(image), one.sha256);

  // 1.1.0 is built for another OS: it would not merge on this node, so it is never switched to.
  const other = await f.publishVersion("hello", "1.1.0", "ID=someotheros\nVERSION_ID=1\n");
  f.serveCatalog(
    "releases.json",
    f.catalogJson(
      { hello: { latest: "1.1.0", tags: tags(one, other) } },
      new Date(Date.now() + 1000).toISOString(),
    ),
  );
  const failed = await apply();
  assert.equal(failed.code, 1, failed.stdout + failed.stderr);
  assert.match(failed.stderr, /step 1 of \d+ \(upgrade sysext hello 1\.0\.0 -> 1\.1\.0/);
  assert.match(failed.stderr, /1\.1\.0: it would not merge on this node/);
  assert.equal(await sha256Of(image), one.sha256, "the old version stays current");
  for (const profile of ["active", "passive"])
    assert.equal(await readlink(path.join(root, STORE, profile, "hello.raw")), "../hello.raw");
});
