// The JSON documents of list, status, versions, upgrade, inspect and check, as the built CLI
// prints them for a real store (a signed DDI built by extctl, a bare squashfs, an extension
// installed by name from a catalog on a real HTTPS server and a real docker-registry), validated
// against the committed schemas in docs/json/ in every --json mode: every key is there (null
// when unknown) and none is there that the schema does not name.
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl, type CliResult } from "../helpers/cli.js";
import { catalogFixture, ok } from "../helpers/catalog-fixture.js";
import { makeSampleImage } from "../helpers/images.js";
import { validate } from "../helpers/json-schema.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import type { JsonSchema } from "../../src/cli/json-schemas.js";

const DOCS = path.resolve(import.meta.dirname, "../../docs/json");

async function schema(name: string): Promise<JsonSchema> {
  return JSON.parse(await readFile(path.join(DOCS, `${name}.schema.json`), "utf8")) as JsonSchema;
}

/**
 * Runs `args` with --json, --json=short and --json=pretty; each must exit `code`, short output
 * must be one line, pretty the same document indented, and the document must validate.
 */
async function checked(
  name: string,
  args: readonly string[],
  code = 0,
): Promise<Record<string, unknown>> {
  const s = await schema(name);
  const runs: Record<string, CliResult> = {};
  for (const mode of ["--json", "--json=short", "--json=pretty"])
    runs[mode] = await runExtctl([...args, mode]);
  for (const [mode, r] of Object.entries(runs))
    assert.equal(r.code, code, `${args.join(" ")} ${mode}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  const short = runs["--json=short"]?.stdout ?? "";
  const pretty = runs["--json=pretty"]?.stdout ?? "";
  assert.equal(short.split("\n").length, 2, `${name}: short is one line`);
  assert.equal(runs["--json"]?.stdout, short, `${name}: --json alone is short`);
  assert.ok(pretty.split("\n").length > 3, `${name}: pretty is indented`);
  const doc = JSON.parse(short) as Record<string, unknown>;
  assert.deepEqual(JSON.parse(pretty), doc, `${name}: pretty and short are one document`);
  assert.deepEqual(validate(doc, s), [], `${name} (${args.join(" ")}) against docs/json`);
  return doc;
}

test("list, status, versions, upgrade, inspect and check print documents their schemas describe", async (t) => {
  const peers = ["docker-registry", "mksquashfs", "mkfs.erofs", "openssl"];
  if (!requirePeers(t, peers, { root: true })) return;
  const f = await catalogFixture(t);
  const work = await tempDir(t, "extctl-json-");
  const root = await tempRoot(t);
  const R = ["--root", root];

  // A signed DDI, trusted by the root.
  const src = path.join(work, "src");
  await mkdir(path.join(src, "usr/bin"), { recursive: true });
  await writeFile(path.join(src, "usr/bin/tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  const key = makeSigningCert(work, "signer");
  ok(
    await runExtctl([
      "build",
      "sysext",
      "tool",
      src,
      "--output",
      work,
      "--private-key",
      key.key,
      "--certificate",
      key.cert,
      "--os-id",
      "_any",
      "--systemd",
      "252",
    ]),
    "build",
  );
  const ddi = path.join(work, "tool.sysext.raw");
  await mkdir(path.join(root, "etc/verity.d"), { recursive: true });
  await writeFile(path.join(root, "etc/verity.d/signer.crt"), await readFile(key.cert));
  // A bare squashfs whose release file this root refuses (a reason in list and check).
  const foreign = await makeSampleImage(work, {
    fileName: "foreign.raw",
    release: "ID=fedora\nVERSION_ID=40\n",
  });
  ok(await runExtctl([...R, "sysext", "install", ddi]), "install the DDI");
  ok(await runExtctl([...R, "sysext", "install", foreign]), "install the bare image");
  ok(await runExtctl([...R, "sysext", "enable", "tool", "--common"]), "enable");

  // An extension installed by name, with a newer version published later.
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v2 = await f.publishVersion("hello", "2.0.0");
  const catalog = (latest: string, generated: string) =>
    f.serveCatalog(
      "releases.json",
      f.catalogJson(
        {
          hello: {
            latest,
            tags: [
              { version: "1.0.0", published: v1 },
              { version: "2.0.0", published: v2 },
            ],
          },
        },
        generated,
      ),
    );
  const url = catalog("1.0.0", "2026-01-01T00:00:00Z");
  const net = ["--catalog", url, ...f.net];
  ok(await runExtctl([...R, "sysext", "install", "hello", ...net]), "install by name");

  const list = await checked("list", [...R, "sysext", "list"]);
  const images = list["images"] as Record<string, unknown>[];
  assert.deepEqual(images.map((i) => i["name"]).sort(), [
    "foreign.raw",
    "hello.raw",
    "tool.sysext.raw",
  ]);
  assert.equal(list["profile"], null, "no profile asked for: null, not left out");
  assert.ok(
    images.every((i) => i["trust"] === null),
    "trust is null without --verify",
  );
  const verified = await checked("list", [...R, "sysext", "list", "--verify"]);
  const tool = (verified["images"] as Record<string, unknown>[]).find(
    (i) => i["name"] === "tool.sysext.raw",
  );
  assert.equal((tool?.["trust"] as { trusted: boolean } | undefined)?.trusted, true);
  await checked("list", [...R, "sysext", "list", "--common"]);

  const status = await checked("status", [...R, "status"]);
  assert.equal((status["kinds"] as unknown[]).length, 2);

  const versions = await checked("versions", [...R, "sysext", "versions", "hello", ...net]);
  assert.equal(versions["current"], "1.0.0");
  const installedOnly = await checked("versions", [
    ...R,
    "sysext",
    "versions",
    "hello",
    "--installed",
  ]);
  assert.equal(installedOnly["offered"], null, "catalogs not read: offered is null");

  // up to date (3), would-upgrade (0, dry run), upgraded (0).
  const same = await checked("upgrade", [...R, "sysext", "upgrade", "--all", ...net], 3);
  assert.equal((same["items"] as { action: string }[])[0]?.action, "up-to-date");
  const url2 = catalog("2.0.0", "2026-02-01T00:00:00Z");
  assert.equal(url2, url);
  const dry = await checked("upgrade", [...R, "sysext", "upgrade", "hello", "--dry-run", ...net]);
  assert.equal((dry["items"] as { action: string }[])[0]?.action, "would-upgrade");
  // One real upgrade (the three modes would upgrade once and then find nothing to do).
  const real = await runExtctl([...R, "sysext", "upgrade", "hello", ...net, "--json=pretty"]);
  assert.equal(real.code, 0, real.stderr);
  const upgraded = JSON.parse(real.stdout) as { items: { action: string; to: string }[] };
  assert.deepEqual(validate(upgraded, await schema("upgrade")), []);
  assert.deepEqual([upgraded.items[0]?.action, upgraded.items[0]?.to], ["upgraded", "2.0.0"]);

  const inspected = await checked("inspect", ["inspect", ddi]);
  assert.equal(inspected["kind"], "ddi");
  assert.equal(inspected["tree"], null, "no --tree: tree is null");
  assert.equal((inspected["signature"] as { status: string }).status, "untrusted-signer");
  await checked("inspect", ["inspect", ddi, "--trust", key.cert, "--files"]);
  const bare = await checked("inspect", ["inspect", foreign, "--tree"]);
  assert.equal(bare["verity"], null);
  assert.equal(bare["partitions"] instanceof Array, true);

  const merges = await checked("check", [...R, "check", ddi]);
  assert.equal(merges["compatible"], true);
  assert.equal(merges["reason"], null, "no failing rule: reason is null");
  const refused = await checked("check", [...R, "check", foreign], 1);
  assert.equal(refused["compatible"], false);
  assert.equal(typeof refused["reason"], "string");
});
