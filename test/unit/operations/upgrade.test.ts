// upgrade and rollback against a fake systemd-sysext (the runner is faked; images are real
// squashfs files made by mksquashfs, so `check` judges them for real): what happens when a new
// version does not merge, pruning, and the versions record. The real merge is in
// test/e2e/lifecycle.test.ts.
import assert from "node:assert/strict";
import { link, mkdir, readFile, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { upgrade } from "../../../src/operations/upgrade.js";
import { rollback } from "../../../src/operations/rollback.js";
import { listVersions } from "../../../src/operations/versions.js";
import { ExtensionStore } from "../../../src/domain/store/store.js";
import {
  VersionedStore,
  versionFileName,
  type VersionEntry,
  type VersionRecord,
} from "../../../src/domain/store/versions.js";
import { parseRequest } from "../../../src/domain/lifecycle/steps.js";
import type { RunOptions, RunResult } from "../../../src/util/runner.js";
import { makeSampleImage } from "../../helpers/images.js";
import { testNode, type TestNode } from "../../helpers/node.js";
import { requirePeers } from "../../helpers/peers.js";
import { FakeSystemd } from "../../helpers/fake-systemd.js";
import { tempDir } from "../../helpers/tmp.js";

const STORE = "/var/lib/kairos/extensions";
const ARCH = process.arch === "x64" ? "amd64" : process.arch;
const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const reference = (n: number) => `registry.example.org/exts/hello@${digest(n)}`;

/** A fake systemd-sysext that refuses to merge hello.raw while it holds `refusedVersion`. */
class PickySystemd extends FakeSystemd {
  refusedVersion: string | undefined;
  constructor(private readonly storeFile: string) {
    super();
  }
  override async run(
    command: string,
    args: readonly string[],
    options?: RunOptions,
  ): Promise<RunResult> {
    const content = await readFile(this.storeFile).catch(() => Buffer.alloc(0));
    if (this.refusedVersion && content.includes(Buffer.from(`version=${this.refusedVersion}\n`)))
      this.refuse.set("hello", "has a release file that does not match");
    else this.refuse.delete("hello");
    return super.run(command, args, options);
  }
}

/**
 * A node with hello installed by name at 1.0.0 (current, enabled in active and linked in /run)
 * and 2.0.0 already fetched, plus a file: catalog whose latest is 2.0.0. No download happens:
 * a version whose file is there is never fetched again.
 */
async function versionedNode(t: TestContext) {
  const node = await testNode(t);
  const systemd = new PickySystemd(node.host(`${STORE}/hello.raw`));
  node.ctx.runner = systemd;
  const work = await tempDir(t);
  const dir = node.host(`${STORE}/.versions/hello`);
  await mkdir(dir, { recursive: true });
  const entries: VersionEntry[] = [];
  for (const [i, version] of ["1.0.0", "2.0.0"].entries()) {
    const image = await makeSampleImage(work, {
      fileName: `hello-${version}.raw`,
      releaseName: "hello",
      release: "ID=_any\n",
      files: { "usr/share/hello/version": `version=${version}\n` },
    });
    const entry: VersionEntry = {
      version,
      file: versionFileName(version, reference(i + 1)),
      reference: `oci://${reference(i + 1)}`,
      installedAt: `2026-0${i + 1}-01T00:00:00.000Z`,
    };
    await writeFile(path.join(dir, entry.file), await readFile(image));
    entries.push(entry);
  }
  const record: VersionRecord = {
    format: 1,
    name: "hello",
    pinned: false,
    catalogs: [],
    versions: [entries[0] as VersionEntry],
    rolledBack: [],
  };
  await writeFile(path.join(dir, "record.json"), JSON.stringify(record));
  await link(path.join(dir, (entries[0] as VersionEntry).file), node.host(`${STORE}/hello.raw`));
  await mkdir(node.host(`${STORE}/active`), { recursive: true });
  await symlink("../hello.raw", node.host(`${STORE}/active/hello.raw`));
  await mkdir(node.host("/run/extensions"), { recursive: true });
  await symlink(`${STORE}/active/hello.raw`, node.host("/run/extensions/hello.raw"));
  await node.boot("active");
  const catalog = path.join(work, "releases.json");
  await writeFile(
    catalog,
    JSON.stringify({
      generated: "2026-06-01T00:00:00Z",
      layers: [
        {
          name: "hello",
          latest: "2.0.0",
          tags: ["1.0.0", "2.0.0"].map((tag, i) => ({
            tag,
            sysext: { [ARCH]: { oci: reference(i + 1) } },
          })),
        },
      ],
    }),
  );
  // 2.0.0 was fetched before (say by `upgrade --for-os`): the record knows its file.
  record.versions.push(entries[1] as VersionEntry);
  await writeFile(path.join(dir, "record.json"), JSON.stringify(record));
  const versions = new VersionedStore(new ExtensionStore(node.ctx.root, "sysext"));
  const current = async () => (await versions.current((await versions.read("hello"))!))?.version;
  return { node, systemd, catalog: `file://${catalog}`, versions, current };
}

async function mergedNames(node: TestNode): Promise<string> {
  return readFile(node.host("/usr/.systemd-sysext/extensions"), "utf8").catch(() => "");
}

test("upgrade --now: a new version systemd does not merge is switched back, the old one merged again, and the item fails naming both", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const { node, systemd, catalog, current } = await versionedNode(t);
  systemd.refusedVersion = "2.0.0";
  const result = await upgrade(node.ctx, {
    kind: "sysext",
    names: [],
    all: true,
    now: true,
    catalogs: [catalog],
  });
  assert.equal(result.exitCode, 1);
  const item = result.items[0];
  assert.equal(item?.action, "failed");
  assert.equal(item?.from, "1.0.0");
  // The row names the version it tried, not "-".
  assert.equal(item?.to, "2.0.0");
  assert.match(
    item?.reason ?? "",
    /hello 2\.0\.0 did not merge: .*hello 1\.0\.0 is current and merged again/,
  );
  assert.equal(await current(), "1.0.0");
  assert.equal(await mergedNames(node), "hello\n", "the old version is merged");
  assert.equal(await node.link(`${STORE}/active/hello.raw`), `${STORE}/hello.raw`);
});

test("upgrade --now that merges records the merged version; rollback --now goes back and upgrade then leaves the rolled-back version alone", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const { node, catalog, current } = await versionedNode(t);
  const up = await upgrade(node.ctx, {
    kind: "sysext",
    names: ["hello"],
    now: true,
    catalogs: [catalog],
  });
  assert.equal(up.exitCode, 0);
  assert.equal(up.items[0]?.merged, true);
  assert.equal(await current(), "2.0.0");
  const back = await rollback(node.ctx, { kind: "sysext", name: "hello", now: true });
  assert.deepEqual([back.from, back.to, back.merged], ["2.0.0", "1.0.0", true]);
  const again = await upgrade(node.ctx, { kind: "sysext", names: ["hello"], catalogs: [catalog] });
  assert.equal(again.items[0]?.action, "skipped");
  assert.match(again.items[0]?.reason ?? "", /rolled back/);
  assert.equal(again.exitCode, 3, "nothing was done");
  assert.equal(await current(), "1.0.0");
});

test("a rollback killed after its record write (previous names the current version) still rolls back, and versions does not call the current one previous", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const { node, versions, current } = await versionedNode(t);
  // The state such a crash leaves: 1.0.0 current, the record's previous already says 1.0.0.
  const record = (await versions.read("hello"))!;
  record.previous = "1.0.0";
  await versions.write(record);
  const shown = await listVersions(node.ctx, {
    kind: "sysext",
    name: "hello",
    installedOnly: true,
  });
  assert.deepEqual(
    shown.installed.filter((v) => v.previous).map((v) => v.version),
    [],
    "the current version is not also the previous one",
  );
  assert.equal(await current(), "1.0.0");
  // rollback has no older version than the current 1.0.0 to go to: it says so, changes nothing.
  await assert.rejects(rollback(node.ctx, { kind: "sysext", name: "hello" }), /no older version/);
  assert.equal(await current(), "1.0.0");
  const back = await rollback(node.ctx, { kind: "sysext", name: "hello", to: "2.0.0" });
  assert.deepEqual([back.from, back.to], ["1.0.0", "2.0.0"]);
});

test("upgrade --dry-run says what it would do and changes nothing; --for-os judges against another os-release and switches nothing", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const { node, systemd, catalog, current } = await versionedNode(t);
  const before = await readdir(node.host(`${STORE}/.versions/hello`));
  const dry = await upgrade(node.ctx, {
    kind: "sysext",
    names: [],
    all: true,
    dryRun: true,
    catalogs: [catalog],
  });
  assert.deepEqual(
    dry.items.map((i) => [i.name, i.from, i.to, i.action]),
    [["hello", "1.0.0", "2.0.0", "would-upgrade"]],
  );
  const pre = await upgrade(node.ctx, {
    kind: "sysext",
    names: ["hello"],
    catalogs: [catalog],
    forOs: { ID: "kairos", VERSION_ID: "3.0" },
  });
  assert.equal(pre.items[0]?.action, "prefetched");
  assert.equal(await current(), "1.0.0");
  assert.deepEqual(await readdir(node.host(`${STORE}/.versions/hello`)), before);
  assert.equal(systemd.refreshes, 0);
});

test("a downgrade chosen by the catalog is refused unless --allow-downgrade", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const { node, catalog, current, versions } = await versionedNode(t);
  const record = (await versions.read("hello"))!;
  await versions.switchTo("hello", record.versions[1] as VersionEntry);
  const text = (await readFile(new URL(catalog), "utf8")).replace(
    '"latest":"2.0.0"',
    '"latest":"1.0.0"',
  );
  await writeFile(new URL(catalog), text);
  const refused = await upgrade(node.ctx, {
    kind: "sysext",
    names: ["hello"],
    catalogs: [catalog],
  });
  assert.equal(refused.items[0]?.action, "failed");
  assert.match(refused.items[0]?.reason ?? "", /older than the current 2\.0\.0.*--allow-downgrade/);
  assert.equal(await current(), "2.0.0");
  const taken = await upgrade(node.ctx, {
    kind: "sysext",
    names: ["hello"],
    catalogs: [catalog],
    allowDowngrade: true,
  });
  assert.equal(taken.items[0]?.action, "upgraded");
  assert.equal(await current(), "1.0.0");
});

test("prune keeps the current, the previous and the merged version, and deletes the oldest beyond --keep", async (t) => {
  if (!requirePeers(t, ["mksquashfs"])) return;
  const { versions } = await versionedNode(t);
  const record = (await versions.read("hello"))!;
  const extra: VersionEntry[] = [];
  for (const [i, v] of ["0.1.0", "0.2.0", "0.3.0"].entries()) {
    const entry: VersionEntry = {
      version: v,
      file: versionFileName(v, reference(i + 5)),
      reference: `oci://${reference(i + 5)}`,
      installedAt: `2025-0${i + 1}-01T00:00:00.000Z`,
    };
    await writeFile(versions.store.root.path(versions.filePath("hello", entry)), "x");
    extra.push(entry);
  }
  record.versions.push(...extra);
  record.merged = "0.1.0";
  const removed = await versions.prune(record, 1);
  // current 1.0.0 and merged 0.1.0 stay; 2.0.0, 0.2.0 and 0.3.0 go (keep 1: only the protected).
  assert.deepEqual(removed.sort(), ["0.2.0", "0.3.0", "2.0.0"]);
  assert.deepEqual((await versions.read("hello"))!.versions.map((e) => e.version).sort(), [
    "0.1.0",
    "1.0.0",
  ]);
});

test("NAME@VERSION and --version are one request; empty or conflicting ones are usage errors", () => {
  assert.deepEqual(parseRequest("gpg", undefined), { name: "gpg" });
  assert.deepEqual(parseRequest("gpg@>= 2.5, < 3", undefined), {
    name: "gpg",
    requested: ">= 2.5, < 3",
  });
  assert.deepEqual(parseRequest("gpg", "^2"), { name: "gpg", requested: "^2" });
  assert.deepEqual(parseRequest("gpg@^2", "^2"), { name: "gpg", requested: "^2" });
  assert.throws(() => parseRequest("gpg@", undefined), /empty version/);
  assert.throws(() => parseRequest("@1.0", undefined), /no extension name/);
  assert.throws(() => parseRequest("gpg@1", "2"), /different versions/);
});
