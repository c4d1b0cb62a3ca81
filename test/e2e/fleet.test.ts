// Fleet behaviour (issue 28) end to end, with a real docker-registry and a real HTTPS catalog
// server: an outage of the registry or of the catalog is EX_TEMPFAIL (75), not the 1 of a failed
// upgrade, nor the 3 of nothing to do; `metrics` is read by the real node_exporter (Debian's
// prometheus-node-exporter), whose textfile collector refuses a malformed file.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { freePort } from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

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

/** Starts node_exporter on 127.0.0.1 with only the textfile collector, reading `dir`. */
async function startNodeExporter(t: TestContext, dir: string): Promise<string> {
  const port = await freePort();
  const child = spawn(
    "prometheus-node-exporter",
    [
      "--collector.disable-defaults",
      "--collector.textfile",
      `--collector.textfile.directory=${dir}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  });
  const url = `http://127.0.0.1:${port}/metrics`;
  for (let i = 0; i < 100; i++) {
    const up = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return url;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`node_exporter did not start: ${stderr}`);
}

test("metrics: node_exporter's textfile collector reads extctl.prom with every series", async (t) => {
  // node_exporter is a peer of the host's (install-peers.sh); the lane roots do not carry it, and
  // what it checks (the file's format) does not depend on the systemd version.
  if (process.env.EXTCTL_LANE) {
    t.skip("node_exporter reads the textfile on the host only");
    return;
  }
  if (!requirePeers(t, [...PEERS, "prometheus-node-exporter"], { root: true })) return;
  const f = await catalogFixture(t);
  const v1 = await f.publishVersion("hello", "1.0.0");
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({ hello: { latest: "1.0.0", tags: [{ version: "1.0.0", published: v1 }] } }),
  );
  const root = await tempRoot(t);
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  ok(await cli("sysext", "install", "hello", "--catalog", url, ...f.net), "install");
  assert.equal((await cli("sysext", "upgrade", "--all", "--catalog", url, ...f.net)).code, 3);

  const printed = ok(await cli("metrics"), "metrics").stdout;
  assert.match(printed, /^# HELP extctl_extension_info /m);
  assert.match(printed, /^# TYPE extctl_extension_info gauge$/m);
  assert.match(
    printed,
    /^extctl_extension_info\{kind="sysext",name="hello",version="1\.0\.0"\} 1$/m,
  );
  assert.match(printed, /^extctl_upgrade_last_exit_code\{kind="sysext"\} 3$/m);
  assert.match(
    printed,
    /^extctl_catalog_age_seconds\{url="https:\/\/127\.0\.0\.1:\d+\/ok\/releases\.json"\} \d+$/m,
  );

  const dir = path.join(await tempDir(t), "textfile");
  const umask = process.umask(0o077);
  const wrote = await cli("metrics", "--write", dir);
  process.umask(umask);
  assert.equal(wrote.code, 0, wrote.stderr);
  assert.equal((await stat(path.join(dir, "extctl.prom"))).mode & 0o777, 0o644);
  assert.deepEqual(await readdir(dir), ["extctl.prom"], "no temp file is left");

  const exporter = await startNodeExporter(t, dir);
  const scraped = await (await fetch(exporter)).text();
  assert.match(
    scraped,
    /^extctl_extension_info\{kind="sysext",name="hello",version="1\.0\.0"\} 1$/m,
  );
  assert.match(scraped, /^extctl_extension_merged\{kind="sysext",name="hello"\} [01]$/m);
  assert.match(scraped, /^extctl_upgrade_last_timestamp_seconds\{kind="sysext"\} \d/m);
  assert.match(scraped, /^node_textfile_scrape_error 0$/m, "the collector took the file");

  // The check is real: a malformed file is refused by the collector, and it says so.
  await writeFile(path.join(dir, "extctl.prom"), "extctl_broken{ 1\n");
  const refused = await (await fetch(exporter)).text();
  assert.match(refused, /^node_textfile_scrape_error 1$/m);
  assert.doesNotMatch(refused, /^extctl_extension_info/m);
});
