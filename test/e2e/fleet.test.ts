// Fleet behaviour (issue 28) end to end, with a real docker-registry and a real HTTPS catalog
// server: an outage of the registry or of the catalog is EX_TEMPFAIL (75), not the 1 of a failed
// upgrade, nor the 3 of nothing to do; the upgrade service takes 75 as "try later".
import assert from "node:assert/strict";
import { test } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempRoot } from "../helpers/tmp.js";

const PEERS = ["docker-registry", "mksquashfs", "openssl"];

test("a registry or catalog that cannot be reached makes upgrade exit 75; up to date is 3", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const v2 = await f.publishVersion("hello", "2.0.0");
  const tags = (latest: string) =>
    f.catalogJson({
      hello: { latest, tags: [v1, v2].map((p) => ({ version: p.version, published: p })) },
    });
  const url = f.serveCatalog("releases.json", tags("1.0.0"));
  const root = await tempRoot(t);
  const cli = (...args: string[]) =>
    runExtctl(["--root", root, ...args, "--catalog", url, ...f.net, "--timeout", "5"]);
  ok(await cli("sysext", "install", "hello"), "install 1.0.0");
  const same = await cli("sysext", "upgrade", "--all", "--json");
  assert.equal(same.code, 3, same.stderr);

  // The catalog moves to 2.0.0 and the registry is down: try later, with the reason.
  f.server.addFile("releases.json", Buffer.from(tags("2.0.0")));
  process.kill(f.registry.pid, "SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  const down = await cli("sysext", "upgrade", "--all", "--json");
  assert.equal(down.code, 75, down.stdout + down.stderr);
  const item = (JSON.parse(down.stdout) as { items: Record<string, unknown>[] }).items[0];
  assert.equal(item?.action, "failed");
  assert.equal(item?.unreachable, true);
  assert.match(String(item?.reason), /cannot reach 127\.0\.0\.1:\d+/);

  // The catalog down too: still 75, naming it.
  const gone = await runExtctl([
    "--root",
    root,
    "sysext",
    "upgrade",
    "--all",
    "--catalog",
    "https://127.0.0.1:1/releases.json",
    "--timeout",
    "5",
  ]);
  assert.equal(gone.code, 75, gone.stderr);
  assert.match(gone.stderr, /127\.0\.0\.1:1\/releases\.json: cannot connect .*connection refused/);
  // An install from the stopped registry says so too.
  const install = await cli("sysext", "install", "hello@2.0.0");
  assert.equal(install.code, 75, install.stderr);
});
