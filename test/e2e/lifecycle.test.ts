// Installing by name from catalogs, upgrading, rolling back (issue 14), end to end: real images
// (mksquashfs) pushed with `extctl publish` to a real docker-registry, catalogs in the Kairos
// format served by a real HTTPS server with a throwaway CA, the real CLI on a throwaway root, and
// the real systemd-sysext for the live merges.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstat, mkdir, readFile, readdir, readlink, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok, sha256Of, type Published } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempNodeRoot, tempRoot } from "../helpers/tmp.js";
import type { RollbackResult } from "../../src/index.js";

const STORE = "var/lib/kairos/extensions";
const PEERS = ["docker-registry", "mksquashfs", "openssl"];

test("install by name takes latest, a pin or the highest tag a constraint allows; --dry-run changes nothing", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v = {
    "1.0.0": await f.publishVersion("hello", "1.0.0"),
    "1.1.0": await f.publishVersion("hello", "1.1.0"),
    "2.0.0": await f.publishVersion("hello", "2.0.0"),
  };
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({
      hello: {
        latest: "1.1.0",
        tags: Object.values(v).map((p) => ({ version: p.version, published: p })),
      },
    }),
  );
  const root = await tempRoot(t);
  const install = (...args: string[]) =>
    runExtctl(["--root", root, "sysext", "install", ...args, "--catalog", url, ...f.net]);

  const dry = ok(await install("hello@^1", "--dry-run", "--json"), "dry run");
  const plan = JSON.parse(dry.stdout) as { name: string; version: string; reference: string };
  assert.deepEqual(
    [plan.name, plan.version, plan.reference],
    ["hello", "1.1.0", `oci://${v["1.1.0"].reference}`],
  );
  await assert.rejects(stat(path.join(root, STORE)), "a dry run makes no store");

  ok(await install("hello"), "latest");
  const image = path.join(root, STORE, "hello.raw");
  assert.equal(await sha256Of(image), v["1.1.0"].sha256, "latest is 1.1.0");
  ok(await install("hello@2.0.0"), "pin");
  assert.equal(await sha256Of(image), v["2.0.0"].sha256);
  ok(await install("hello", "--version", ">= 1.0, < 1.1"), "constraint");
  assert.equal(await sha256Of(image), v["1.0.0"].sha256);

  const missing = await install("hello@3.0.0");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /3\.0\.0/);
  assert.equal(await sha256Of(image), v["1.0.0"].sha256, "a failed install changes nothing");
  const versions = JSON.parse(
    ok(
      await runExtctl([
        "--root",
        root,
        "sysext",
        "versions",
        "hello",
        "--json",
        "--catalog",
        url,
        ...f.net,
      ]),
      "versions",
    ).stdout,
  ) as { current: string; installed: { version: string }[]; offered: { version: string }[] };
  assert.equal(versions.current, "1.0.0");
  assert.deepEqual(versions.installed.map((i) => i.version).sort(), ["1.0.0", "1.1.0", "2.0.0"]);
  assert.deepEqual(versions.offered.map((o) => o.version).sort(), ["1.0.0", "1.1.0", "2.0.0"]);
});

test("the first catalog that publishes a name wins, the shadowed one is named, an unreachable one is skipped", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const one = await f.publishVersion("hello", "1.0.0");
  const two = await f.publishVersion("hello", "2.0.0");
  const first = f.serveCatalog(
    "first.json",
    f.catalogJson({ hello: { latest: "1.0.0", tags: [{ version: "1.0.0", published: one }] } }),
  );
  const second = f.serveCatalog(
    "second.json",
    f.catalogJson({ hello: { latest: "2.0.0", tags: [{ version: "2.0.0", published: two }] } }),
  );
  const gone = `${f.server.origin}/no-such-catalog.json`;
  const root = await tempRoot(t);
  const r = ok(
    await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      "hello",
      "--json",
      "--catalog",
      gone,
      "--catalog",
      first,
      "--catalog",
      second,
      ...f.net,
    ]),
    "install",
  );
  const result = JSON.parse(r.stdout) as { version: string; catalog: string; shadowed: string[] };
  assert.equal(result.version, "1.0.0");
  assert.equal(result.catalog, first);
  assert.deepEqual(result.shadowed, [second]);
  assert.match(r.stderr, /no-such-catalog\.json/, "the skipped catalog is warned about");
  assert.match(r.stderr, /shadow/);
  const none = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    "hello",
    "--catalog",
    gone,
    ...f.net,
  ]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no-such-catalog\.json/);
});

test("upgrade keeps every profile and the link names, a pin does not move, an incompatible version is never switched to, rollback goes back", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v11 = await f.publishVersion("hello", "1.1.0");
  const v12 = await f.publishVersion("hello", "1.2.0");
  const alien = await f.publishVersion("hello", "1.3.0", "ID=nosuchos\nVERSION_ID=1\n");
  const pinned = await f.publishVersion("tool", "0.1.0");
  const tool2 = await f.publishVersion("tool", "0.2.0");
  const catalog = (hello: Published[], latest: string) =>
    f.catalogJson({
      hello: { latest, tags: hello.map((p) => ({ version: p.version, published: p })) },
      tool: {
        latest: "0.2.0",
        tags: [pinned, tool2].map((p) => ({ version: p.version, published: p })),
      },
    });
  const url = f.serveCatalog("releases.json", catalog([v1, v11], "1.1.0"));
  const root = await tempRoot(t);
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  ok(await cli("sysext", "install", "hello@^1.0", "--catalog", url, ...f.net), "install");
  ok(await cli("sysext", "install", "tool@0.1.0", "--catalog", url, ...f.net), "install pin");
  for (const profile of ["--active", "--passive", "--common"])
    ok(await cli("sysext", "enable", "hello", profile), `enable ${profile}`);
  const links = async () => {
    const out: Record<string, string> = {};
    for (const profile of ["active", "passive", "common"])
      out[profile] = await readlink(path.join(root, STORE, profile, "hello.raw"));
    return out;
  };
  const before = await links();
  assert.deepEqual(before, {
    active: "../hello.raw",
    passive: "../hello.raw",
    common: "../hello.raw",
  });

  const nothing = await cli("sysext", "upgrade", "--all", "--json", "--catalog", url, ...f.net);
  assert.equal(nothing.code, 3, `nothing to do exits 3: ${nothing.stderr}`);

  f.server.addFile("releases.json", Buffer.from(catalog([v1, v11, v12], "1.2.0")));
  const up = await cli("sysext", "upgrade", "--all", "--json", "--catalog", url, ...f.net);
  assert.equal(up.code, 0, up.stderr);
  const items = (
    JSON.parse(up.stdout) as {
      items: { name: string; from?: string; to?: string; action: string }[];
    }
  ).items;
  assert.deepEqual(
    items.map((i) => [i.name, i.from, i.action]),
    [
      ["hello", "1.1.0", "upgraded"],
      ["tool", "0.1.0", "up-to-date"],
    ],
  );
  assert.equal(await sha256Of(path.join(root, STORE, "hello.raw")), v12.sha256);
  assert.equal(
    await sha256Of(path.join(root, STORE, "tool.raw")),
    pinned.sha256,
    "a pin does not move",
  );
  assert.deepEqual(await links(), before, "every profile link is where it was");
  assert.ok(
    (await lstat(path.join(root, STORE, "hello.raw"))).isFile(),
    "NAME.raw stays a regular file",
  );

  // 1.3.0 satisfies ^1.0 but is for another OS: check refuses it before anything switches.
  f.server.addFile("releases.json", Buffer.from(catalog([v1, v11, v12, alien], "1.3.0")));
  const bad = await cli("sysext", "upgrade", "hello", "--json", "--catalog", url, ...f.net);
  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  const badItem = (
    JSON.parse(bad.stdout) as { items: { action: string; reason: string; from: string }[] }
  ).items[0];
  assert.equal(badItem?.action, "failed");
  assert.equal(badItem?.from, "1.2.0");
  assert.match(badItem?.reason ?? "", /1\.3\.0.*would not merge/);
  assert.equal(
    await sha256Of(path.join(root, STORE, "hello.raw")),
    v12.sha256,
    "the old version stays",
  );
  const kept = await readdir(path.join(root, STORE, ".versions/hello"));
  assert.ok(
    !kept.some((n) => n.startsWith("1.3.0")),
    `the refused version is not kept: ${kept.join(" ")}`,
  );

  const back = ok(await cli("sysext", "rollback", "hello", "--json"), "rollback");
  const rolledBack = jsonOf<RollbackResult>(back);
  assert.deepEqual([rolledBack.from, rolledBack.to], ["1.2.0", "1.1.0"]);
  assert.equal(await sha256Of(path.join(root, STORE, "hello.raw")), v11.sha256);
  assert.deepEqual(await links(), before);
  ok(await cli("sysext", "rollback", "hello", "--to", "1.2.0"), "rollback --to (forward)");
  assert.equal(await sha256Of(path.join(root, STORE, "hello.raw")), v12.sha256);
  const missing = await cli("sysext", "rollback", "hello", "--to", "0.9.0");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /0\.9\.0 is not installed/);
});

test("keep-N never removes the current version, and remove takes every version with it", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const published = [];
  for (const version of ["1.0.0", "1.1.0", "1.2.0", "1.3.0"])
    published.push(await f.publishVersion("hello", version));
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({
      hello: {
        latest: "1.3.0",
        tags: published.map((p) => ({ version: p.version, published: p })),
      },
    }),
  );
  const root = await tempRoot(t);
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  for (const p of published)
    ok(
      await cli(
        "sysext",
        "install",
        `hello@${p.version}`,
        "--keep",
        "2",
        "--catalog",
        url,
        ...f.net,
      ),
      p.version,
    );
  const files = async () =>
    (await readdir(path.join(root, STORE, ".versions/hello")))
      .filter((n) => n.endsWith(".raw"))
      .sort();
  assert.deepEqual(
    (await files()).map((n) => n.split("-")[0]),
    ["1.2.0", "1.3.0"],
  );
  // An older current version survives pruning: it is the one in use.
  ok(
    await cli("sysext", "install", "hello@1.0.0", "--keep", "1", "--catalog", url, ...f.net),
    "back to 1.0.0",
  );
  assert.deepEqual(
    (await files()).map((n) => n.split("-")[0]).sort(),
    ["1.0.0", "1.3.0"],
    "current and previous are kept",
  );
  assert.equal(await sha256Of(path.join(root, STORE, "hello.raw")), published[0]?.sha256);
  ok(await cli("sysext", "remove", "hello"), "remove");
  await assert.rejects(stat(path.join(root, STORE, ".versions/hello")));
  await assert.rejects(stat(path.join(root, STORE, "hello.raw")));
});

test("upgrade --now merges the new version with the real systemd-sysext", async (t) => {
  if (!requirePeers(t, [...PEERS, "systemd-sysext", "mount", "umount"], { root: true })) return;
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v2 = await f.publishVersion("hello", "2.0.0");
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({ hello: { latest: "1.0.0", tags: [{ version: "1.0.0", published: v1 }] } }),
  );
  const root = await tempNodeRoot(t);
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  ok(await cli("sysext", "install", "hello", "--catalog", url, ...f.net), "install");
  ok(await cli("sysext", "enable", "hello", "--common", "--now"), "enable --now");
  assert.equal(await readFile(path.join(root, "usr/share/hello/version"), "utf8"), "1.0.0\n");
  f.server.addFile(
    "releases.json",
    Buffer.from(
      f.catalogJson({
        hello: {
          latest: "2.0.0",
          tags: [v1, v2].map((p) => ({ version: p.version, published: p })),
        },
      }),
    ),
  );
  const up = await cli("sysext", "upgrade", "hello", "--now", "--json", "--catalog", url, ...f.net);
  assert.equal(up.code, 0, up.stderr);
  const item = (JSON.parse(up.stdout) as { items: { action: string; merged?: boolean }[] })
    .items[0];
  assert.equal(item?.action, "upgraded");
  assert.equal(item?.merged, true);
  assert.equal(await readFile(path.join(root, "usr/share/hello/version"), "utf8"), "2.0.0\n");
  ok(await cli("sysext", "rollback", "hello", "--now"), "rollback --now");
  assert.equal(await readFile(path.join(root, "usr/share/hello/version"), "utf8"), "1.0.0\n");
});

test("a catalog that is tampered with, unsigned under --catalog-policy signed, or older than one seen is refused with nothing changed", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v2 = await f.publishVersion("hello", "2.0.0");
  const keyDir = path.join(f.dir, "keys");
  await mkdir(keyDir, { recursive: true });
  const { makeSigningCert } = await import("../helpers/keys.js");
  const signer = makeSigningCert(keyDir, "catalog-signer");
  const sign = async (name: string, json: string) => {
    const file = path.join(f.dir, name);
    await writeFile(file, json);
    ok(
      await runExtctl([
        "catalog",
        "sign",
        file,
        "--key",
        signer.key,
        "--cert",
        signer.cert,
        "--output",
        `${file}.p7s`,
      ]),
      "catalog sign",
    );
    f.server.addFile(name, Buffer.from(json));
    f.server.addFile(`${name}.p7s`, await readFile(`${file}.p7s`));
    return f.server.url(name);
  };
  const older = f.catalogJson(
    { hello: { latest: "1.0.0", tags: [{ version: "1.0.0", published: v1 }] } },
    "2026-01-01T00:00:00Z",
  );
  const newer = f.catalogJson(
    {
      hello: { latest: "2.0.0", tags: [v1, v2].map((p) => ({ version: p.version, published: p })) },
    },
    "2026-06-01T00:00:00Z",
  );
  const root = await tempRoot(t);
  const trust = ["--trust", signer.cert, "--catalog-policy", "signed"];
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  const url = await sign("releases.json", newer);
  ok(
    await cli("sysext", "install", "hello", "--catalog", url, ...trust, ...f.net),
    "signed install",
  );
  const image = path.join(root, STORE, "hello.raw");
  assert.equal(await sha256Of(image), v2.sha256);
  const state = async () => [
    await sha256Of(image),
    (await readdir(path.join(root, STORE, ".versions/hello"))).sort(),
  ];
  const before = await state();

  // Tampered: the bytes change, the signature does not.
  f.server.addFile("releases.json", Buffer.from(newer.replace("2.0.0", "1.0.0")));
  const tampered = await cli("sysext", "upgrade", "hello", "--catalog", url, ...trust, ...f.net);
  assert.equal(tampered.code, 1, tampered.stderr);
  assert.match(tampered.stderr, /signature/i);
  assert.deepEqual(await state(), before);

  // Unsigned under the signed policy.
  f.server.addFile("plain.json", Buffer.from(newer));
  const unsigned = await cli(
    "sysext",
    "install",
    "hello",
    "--catalog",
    f.server.url("plain.json"),
    ...trust,
    ...f.net,
  );
  assert.equal(unsigned.code, 1, unsigned.stderr);
  assert.deepEqual(await state(), before);

  // Validly signed, but older than the catalog seen at that URL: a replay or a freeze.
  await sign("releases.json", older);
  const stale = await cli(
    "sysext",
    "upgrade",
    "hello",
    "--allow-downgrade",
    "--catalog",
    url,
    ...trust,
    ...f.net,
  );
  assert.equal(stale.code, 1, stale.stderr);
  assert.match(stale.stderr, /older|stale|replay/i);
  assert.deepEqual(await state(), before);
  await rm(path.join(f.dir, "releases.json"), { force: true });
});

test("a rollout gate: a node in the wave takes the gated latest, one outside it stays on the ungated version", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const { rolloutBucket } = await import("../../src/domain/catalog/resolve.js");
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v2 = await f.publishVersion("hello", "2.0.0");
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({
      hello: {
        latest: "2.0.0",
        tags: [
          { version: "1.0.0", published: v1 },
          { version: "2.0.0", published: v2, rollout: 50 },
        ],
      },
    }),
  );
  // Two machine ids, one on each side of 50%.
  const ids: Record<"inside" | "outside", string | undefined> = {
    inside: undefined,
    outside: undefined,
  };
  for (let i = 0; !(ids.inside && ids.outside); i++) {
    const id = createHash("md5").update(String(i)).digest("hex");
    ids[rolloutBucket(id, "hello") < 50 ? "inside" : "outside"] ??= id;
  }
  for (const [side, id] of Object.entries(ids)) {
    const root = await tempRoot(t);
    await writeFile(path.join(root, "etc/machine-id"), `${id}\n`);
    const r = ok(
      await runExtctl([
        "--root",
        root,
        "sysext",
        "install",
        "hello",
        "--json",
        "--catalog",
        url,
        ...f.net,
      ]),
      side,
    );
    assert.equal(
      (JSON.parse(r.stdout) as { version: string }).version,
      side === "inside" ? "2.0.0" : "1.0.0",
      side,
    );
  }
});
