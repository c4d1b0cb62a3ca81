// A health-gated upgrade (issue 28 item 4) end to end: real images pushed to a real
// docker-registry, a catalog over real HTTPS, the real CLI on a node root merged by the real
// systemd-sysext. A passing check keeps the new version merged; a failing one (the remembered
// check, under upgrade --all) puts the old version back, merged, and the command says why.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempNodeRoot } from "../helpers/tmp.js";

const PEERS = ["docker-registry", "mksquashfs", "openssl", "systemd-sysext", "mount", "umount"];

interface Item {
  name: string;
  from?: string;
  to?: string;
  action: string;
  reason: string;
  merged?: boolean;
  healthCheck?: { command: string[]; passed: boolean; exitCode?: number; summary: string };
}

/**
 * The extensions systemd-sysext says are merged under the root (status --json). systemd 252's
 * status ignores --root for its marker file, so there the proof is the overlay systemd-sysext
 * mounted on ROOT/usr (the merged file's content is checked beside it).
 */
function sysextMerged(root: string): string[] {
  try {
    const out = execFileSync("systemd-sysext", ["status", `--root=${root}`, "--json=short"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const rows = JSON.parse(out) as { extensions: string[] | string }[];
    return rows.flatMap((r) => (Array.isArray(r.extensions) ? r.extensions : []));
  } catch {
    const fs = execFileSync("findmnt", ["-n", "-o", "FSTYPE", path.join(root, "usr")], {
      encoding: "utf8",
    });
    return fs.trim().split("\n").includes("overlay") ? ["hello"] : [];
  }
}

test("upgrade --now --health-check: a passing check keeps the new version merged; the remembered check failing under --all puts the old one back", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v = {
    "1.0.0": await f.publishVersion("hello", "1.0.0"),
    "2.0.0": await f.publishVersion("hello", "2.0.0"),
    "3.0.0": await f.publishVersion("hello", "3.0.0"),
  };
  const offer = (...tags: (keyof typeof v)[]) =>
    f.catalogJson({
      hello: {
        latest: tags.at(-1) as string,
        tags: tags.map((tag) => ({ version: tag, published: v[tag] })),
      },
    });
  const url = f.serveCatalog("releases.json", offer("1.0.0"));
  const root = await tempNodeRoot(t);
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  const merged = () => readFile(path.join(root, "usr/share/hello/version"), "utf8");
  ok(await cli("sysext", "install", "hello", "--catalog", url, ...f.net), "install");
  ok(await cli("sysext", "enable", "hello", "--common", "--now"), "enable --now");
  assert.equal(await merged(), "1.0.0\n");

  // Shell syntax outside sh -c is refused before anything happens.
  const shelly = await cli(
    "sysext",
    "upgrade",
    "hello",
    "--now",
    "--health-check",
    "true; rm -rf /",
  );
  assert.equal(shelly.code, 2, shelly.stderr);
  assert.match(shelly.stderr, /";" would mean something to a shell/);
  const notNow = await cli("sysext", "upgrade", "hello", "--health-check", "/bin/true");
  assert.equal(notNow.code, 2, notNow.stderr);
  assert.match(notNow.stderr, /--now/);

  // 2.0.0 with a check the workload passes: it stays merged, and the check is remembered.
  f.server.addFile("releases.json", Buffer.from(offer("1.0.0", "2.0.0")));
  const check = `grep -qx 2.0.0 '${root}/usr/share/hello/version'`;
  const up = await cli(
    "sysext",
    "upgrade",
    "hello",
    "--now",
    "--json",
    "--health-check",
    check,
    "--catalog",
    url,
    ...f.net,
  );
  assert.equal(up.code, 0, up.stderr);
  const passed = jsonOf<{ items: Item[] }>(up).items[0];
  assert.equal(passed?.action, "upgraded");
  assert.equal(passed?.merged, true);
  assert.equal(passed?.healthCheck?.passed, true);
  assert.deepEqual(passed?.healthCheck?.command, [
    "grep",
    "-qx",
    "2.0.0",
    `${root}/usr/share/hello/version`,
  ]);
  assert.equal(await merged(), "2.0.0\n");
  assert.ok(sysextMerged(root).includes("hello"), "systemd-sysext merges hello");
  const record = JSON.parse(
    await readFile(
      path.join(root, "var/lib/kairos/extensions/.versions/hello/record.json"),
      "utf8",
    ),
  ) as { healthCheck?: string[] };
  assert.deepEqual(record.healthCheck, passed?.healthCheck?.command, "the check is remembered");

  // 3.0.0 under upgrade --all: the remembered check fails (the file says 3.0.0), 2.0.0 comes back.
  f.server.addFile("releases.json", Buffer.from(offer("1.0.0", "2.0.0", "3.0.0")));
  const down = await cli(
    "sysext",
    "upgrade",
    "--all",
    "--now",
    "--json",
    "--catalog",
    url,
    ...f.net,
  );
  assert.equal(down.code, 1, down.stderr);
  const failed = jsonOf<{ items: Item[] }>(down).items[0];
  assert.equal(failed?.action, "failed");
  assert.equal(failed?.to, "3.0.0");
  assert.equal(failed?.healthCheck?.exitCode, 1);
  assert.match(failed?.reason ?? "", /health check `grep -qx 2\.0\.0 .*` failed \(exit status 1\)/);
  assert.match(failed?.reason ?? "", /hello 2\.0\.0 is current and merged again/);
  // One result per event (issue 29): with --json the reason is in the document, not logged again.
  assert.doesNotMatch(down.stderr, /health check .* failed/);
  assert.equal(await merged(), "2.0.0\n", "the old version's files are merged again");
  assert.ok(sysextMerged(root).includes("hello"), "systemd-sysext merges hello again");
  const versions = jsonOf<{ current: string; installed: { version: string; merged?: boolean }[] }>(
    ok(await cli("sysext", "versions", "hello", "--installed", "--json"), "versions"),
  );
  assert.equal(versions.current, "2.0.0");
  // A failed check counts as a rollback: the next upgrade leaves 3.0.0 alone.
  const again = await cli(
    "sysext",
    "upgrade",
    "--all",
    "--now",
    "--json",
    "--catalog",
    url,
    ...f.net,
  );
  assert.equal(again.code, 3, again.stderr);
  assert.equal(jsonOf<{ items: Item[] }>(again).items[0]?.action, "skipped");

  // '' forgets the remembered check.
  ok(
    await cli(
      "sysext",
      "upgrade",
      "hello",
      "--now",
      "--health-check",
      "",
      "--catalog",
      url,
      ...f.net,
    ).then((r) => ({ ...r, code: r.code === 3 ? 0 : r.code })),
    "forget",
  );
  const forgot = JSON.parse(
    await readFile(
      path.join(root, "var/lib/kairos/extensions/.versions/hello/record.json"),
      "utf8",
    ),
  ) as { healthCheck?: string[] };
  assert.equal(forgot.healthCheck, undefined);
});
