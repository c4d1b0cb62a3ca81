// `extctl apply` as a user runs it, against a local http server on 127.0.0.1: a download that is
// cut in the middle loses nothing (the old image, its links and the record stay), and one file
// applied to three roots at once by three extctl processes gives three identical nodes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, readdir, readlink, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { TestContext } from "node:test";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { runExtctl } from "../helpers/cli.js";
import { randomImageBytes } from "../helpers/stub-image.js";

const STORE = "var/lib/kairos/extensions";
const V1 = randomImageBytes(256 * 1024);
const V2 = randomImageBytes(256 * 1024);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/**
 * Serves /v1/tools.raw and /v2/tools.raw whole, /cut/tools.raw (V2) cut after half, and
 * /stall/tools.raw: the head and 1 KiB of V2, then nothing more.
 */
async function server(t: TestContext): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const s = http.createServer((req, res) => {
    requests++;
    const body = req.url === "/v1/tools.raw" ? V1 : V2;
    const paths = ["/v1/tools.raw", "/v2/tools.raw", "/cut/tools.raw", "/stall/tools.raw"];
    if (!paths.includes(req.url ?? "")) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": String(body.length) });
    if (req.url === "/cut/tools.raw") {
      // Half the promised bytes, then the connection dies.
      res.write(body.subarray(0, body.length / 2), () => res.destroy());
      return;
    }
    if (req.url === "/stall/tools.raw") {
      res.write(body.subarray(0, 1024));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  t.after(() => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, requests: () => requests };
}

const file = (
  url: string,
  dir: string,
  digest: string,
  profiles = "[active, common]",
) => `#cloud-config
hostname: node1
extensions:
  sysext:
    - source: ${url}/${dir}/tools.raw
      sha256: ${digest}
      profiles: ${profiles}
`;

async function snapshot(root: string) {
  const out: Record<string, string> = {};
  for (const p of ["active", "common", "passive"]) {
    for (const n of await readdir(path.join(root, STORE, p)).catch(() => [] as string[]))
      out[`${p}/${n}`] = await readlink(path.join(root, STORE, p, n));
  }
  out.image = sha(await readFile(path.join(root, STORE, "tools.raw")));
  out.state = await readFile(path.join(root, "var/lib/kairos/extctl-apply.json"), "utf8");
  const leftovers = (await readdir(path.join(root, STORE))).filter((n) => n.startsWith("."));
  out.leftovers = leftovers.join(",");
  return out;
}

/** A node with V1 applied from the test server; `f` is the file to apply changes with. */
async function nodeWithV1(t: TestContext) {
  const { url } = await server(t);
  const root = await tempRoot(t);
  const f = path.join(await tempDir(t), "node.yaml");
  await writeFile(f, file(url, "v1", sha(V1)));
  const first = await runExtctl(["--root", root, "apply", f, "--refresh", "none"]);
  assert.equal(first.code, 0, first.stderr);
  const before = await snapshot(root);
  assert.equal(before.image, sha(V1));
  return { url, root, f, before };
}

test("a download cut in the middle fails its step and loses nothing", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const { url, root, f, before } = await nodeWithV1(t);

  await writeFile(f, file(url, "cut", sha(V2), "[passive]"));
  const cut = await runExtctl(["--root", root, "apply", f, "--refresh", "none"]);
  assert.equal(cut.code, 1);
  assert.match(
    cut.stderr,
    /step 1 of \d+ \(install sysext tools\.raw from http:\/\/127\.0\.0\.1:\d+\/cut\/tools\.raw/,
  );
  assert.deepEqual(await snapshot(root), before, "image, links and record are as before");

  // The same change from a server that delivers: replaced, and the profile change applied.
  await writeFile(f, file(url, "v2", sha(V2), "[passive]"));
  const ok = await runExtctl(["--root", root, "apply", f, "--refresh", "none", "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  const after = await snapshot(root);
  assert.equal(after.image, sha(V2));
  assert.deepEqual(
    Object.keys(after).filter((k) => k.includes("/")),
    ["passive/tools.raw"],
  );
});

test("apply --timeout gives up on a server that stops sending, and loses nothing", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const { url, root, f, before } = await nodeWithV1(t);

  await writeFile(f, file(url, "stall", sha(V2)));
  const started = Date.now();
  const stalled = await runExtctl([
    "--root",
    root,
    "apply",
    f,
    "--refresh",
    "none",
    "--timeout",
    "1",
  ]);
  assert.equal(stalled.code, 75, "a stalled server is EX_TEMPFAIL: try later");
  assert.match(stalled.stderr, /too slow: less than 1024 bytes in 1 s/);
  assert.ok(Date.now() - started < 20_000, "gave up within the limit, not the 60 s default");
  assert.deepEqual(await snapshot(root), before);

  const bad = await runExtctl(["--root", root, "apply", f, "--timeout", "soon"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--timeout wants a positive number of seconds, got "soon"/);
});

test("one file applied to three roots at once gives three identical nodes", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const { url, requests } = await server(t);
  const dir = await tempDir(t);
  const f = path.join(dir, "node.yaml");
  await writeFile(f, file(url, "v1", sha(V1)));
  const roots = await Promise.all([tempRoot(t), tempRoot(t), tempRoot(t)]);
  const results = await Promise.all(
    roots.map((root) => runExtctl(["--root", root, "apply", f, "--refresh", "none", "--json"])),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assert.equal(requests(), 3, "each root downloads once");
  const snaps = await Promise.all(roots.map(snapshot));
  assert.equal(snaps[0]?.image, sha(V1));
  assert.deepEqual(snaps[1], snaps[0]);
  assert.deepEqual(snaps[2], snaps[0]);
  // A second round does nothing anywhere, and downloads nothing.
  const again = await Promise.all(
    roots.map((root) => runExtctl(["--root", root, "apply", f, "--refresh", "none", "--json"])),
  );
  for (const r of again) assert.deepEqual((JSON.parse(r.stdout) as { steps: unknown[] }).steps, []);
  assert.equal(requests(), 3);
});

test("a schema error on the command line names the line and field and exits 1", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const root = await tempRoot(t);
  const r = await runExtctl(["--root", root, "apply", "-"], {
    input: "extensions:\n  sysext:\n    - source: file:///x.raw\n      profiles: [activ]\n",
  });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /<stdin>:4: extensions\.sysext\[0\]\.profiles\[0\]: "activ" is not a profile/,
  );
  assert.deepEqual(await readdir(path.join(root, "var")).catch(() => []), []);
});
