// Proxies from the environment against a real CONNECT proxy (tinyproxy, whose log shows every
// tunnel): https: and oci: go through HTTPS_PROXY, NO_PROXY reaches hosts directly, and a dead
// proxy is one clear sentence. Every extctl run is async: the https server lives in this process.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { makeTestCertificates, withHttpsServer } from "../helpers/https-server.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { freePort, startRegistry } from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

async function startTinyproxy(t: TestContext, dir: string): Promise<{ url: string; log: string }> {
  const port = await freePort();
  const log = path.join(dir, "tinyproxy.log");
  const conf = path.join(dir, "tinyproxy.conf");
  // No ConnectPort line: CONNECT to any port (the test servers listen on free high ports).
  await writeFile(
    conf,
    `Port ${port}\nListen 127.0.0.1\nTimeout 60\nLogFile "${log}"\nLogLevel Connect\nAllow 127.0.0.1\nMaxClients 20\n`,
  );
  await writeFile(log, "");
  const child = spawn("tinyproxy", ["-d", "-c", conf], { stdio: "ignore" });
  t.after(() => {
    child.kill("SIGTERM");
  });
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    if (r) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return { url: `http://127.0.0.1:${port}`, log };
}

/** extctl with `env`'s proxy variables and none of the others this machine may have set. */
function extctl(args: string[], env: NodeJS.ProcessEnv) {
  const unset = Object.fromEntries(
    ["https_proxy", "http_proxy", "all_proxy", "ALL_PROXY", "no_proxy"].map((k) => [k, undefined]),
  );
  return runExtctl(args, { env: { ...unset, ...env } });
}

async function tunnels(log: string, port: string): Promise<number> {
  const text = await readFile(log, "utf8");
  return text.split("\n").filter((l) => l.includes(`CONNECT`) && l.includes(`:${port}`)).length;
}

test("https: and oci: go through HTTPS_PROXY with CONNECT, NO_PROXY bypasses it, a dead proxy is a clear error", async (t) => {
  if (!requirePeers(t, ["tinyproxy", "docker-registry", "openssl", "mksquashfs"], { root: true }))
    return;
  const dir = await tempDir(t);
  const certs = await makeTestCertificates(path.join(dir, "certs"));
  const proxy = await startTinyproxy(t, dir);
  const image = await makeSampleImage(dir, { fileName: "edge.sysext.raw", release: "ID=_any\n" });
  const server = await withHttpsServer(t, { dir: path.join(dir, "https"), certificates: certs });
  server.addFile("edge.sysext.raw", await readFile(image));
  const registry = await startRegistry(
    t,
    { kind: "none" },
    { cert: certs.serverCert, key: certs.serverKey },
  );
  const pushed = await runExtctl([
    "publish",
    image,
    `oci://${registry.host}/exts/edge:1`,
    "--ca-cert",
    certs.caCert,
  ]);
  assert.equal(pushed.code, 0, pushed.stderr);

  const sources = [
    { uri: server.url("edge.sysext.raw"), port: String(server.port) },
    { uri: `oci://${registry.host}/exts/edge:1`, port: registry.host.split(":")[1] as string },
  ];
  for (const { uri, port } of sources) {
    const root = await tempRoot(t);
    const before = await tunnels(proxy.log, port);
    const r = await extctl(["--root", root, "sysext", "install", uri, "--ca-cert", certs.caCert], {
      HTTPS_PROXY: proxy.url,
      NO_PROXY: "",
    });
    assert.equal(r.code, 0, `${uri} through the proxy: ${r.stderr}`);
    assert.deepEqual(
      await readFile(path.join(root, "var/lib/kairos/extensions/edge.sysext.raw")),
      await readFile(image),
    );
    assert.ok(
      (await tunnels(proxy.log, port)) > before,
      `${uri}: the proxy log shows no CONNECT to :${port}`,
    );

    const direct = await tempRoot(t);
    const mid = await tunnels(proxy.log, port);
    const d = await extctl(
      ["--root", direct, "sysext", "install", uri, "--ca-cert", certs.caCert],
      {
        HTTPS_PROXY: proxy.url,
        NO_PROXY: "localhost,127.0.0.1",
      },
    );
    assert.equal(d.code, 0, `${uri} with NO_PROXY: ${d.stderr}`);
    assert.equal(
      await tunnels(proxy.log, port),
      mid,
      `${uri}: NO_PROXY still went through the proxy`,
    );

    const dead = `http://127.0.0.1:${await freePort()}`;
    const gone = await extctl(
      [
        "--root",
        await tempRoot(t),
        "sysext",
        "install",
        uri,
        "--ca-cert",
        certs.caCert,
        "--timeout",
        "10",
      ],
      {
        HTTPS_PROXY: dead,
        NO_PROXY: "",
      },
    );
    assert.equal(gone.code, 75, `a dead proxy cannot be reached: EX_TEMPFAIL; ${gone.stderr}`);
    assert.match(gone.stderr, /proxy|ECONNREFUSED/i);
    assert.doesNotMatch(gone.stderr, /\n\s+at /, "no stack trace");
  }
});

// Issue 24 item 4: through a CONNECT tunnel the TLS connection lost its host, so a server
// addressed by IP was checked against the name "localhost": a certificate with only the IP SAN
// failed, and one naming only localhost passed for https://127.0.0.1. Checked for https: and oci:.
test("through HTTPS_PROXY the tunnelled TLS checks the target's own host: an IP-only certificate passes for 127.0.0.1, a localhost-only one fails", async (t) => {
  if (!requirePeers(t, ["tinyproxy", "docker-registry", "openssl", "mksquashfs"], { root: true }))
    return;
  const dir = await tempDir(t);
  const certs = await makeTestCertificates(path.join(dir, "certs"));
  const proxy = await startTinyproxy(t, dir);
  const image = await makeSampleImage(dir, { fileName: "edge.sysext.raw", release: "ID=_any\n" });
  const bytes = await readFile(image);
  const serve = async (certificate: "ip-only" | "name-only") => {
    const server = await withHttpsServer(t, {
      dir: path.join(dir, certificate),
      certificates: certs,
      certificate,
    });
    server.addFile("edge.sysext.raw", bytes);
    return server;
  };
  const registryWith = async (cert: string, key: string) => {
    const registry = await startRegistry(t, { kind: "none" }, { cert, key });
    const port = registry.host.split(":")[1] as string;
    return { registry, port };
  };
  const ipServer = await serve("ip-only");
  const nameServer = await serve("name-only");
  const ipRegistry = await registryWith(certs.ipOnlyCert, certs.ipOnlyKey);
  const nameRegistry = await registryWith(certs.nameOnlyCert, certs.nameOnlyKey);
  // Published directly (no proxy) to the IP-only registry by its address.
  const pushed = await runExtctl([
    "publish",
    image,
    `oci://${ipRegistry.registry.host}/exts/edge:1`,
    "--ca-cert",
    certs.caCert,
  ]);
  assert.equal(pushed.code, 0, pushed.stderr);

  const install = async (uri: string, port: string) => {
    const root = await tempRoot(t);
    const before = await tunnels(proxy.log, port);
    const r = await extctl(["--root", root, "sysext", "install", uri, "--ca-cert", certs.caCert], {
      HTTPS_PROXY: proxy.url,
      NO_PROXY: "",
    });
    assert.ok((await tunnels(proxy.log, port)) > before, `${uri}: no CONNECT to :${port}`);
    return { r, root };
  };

  for (const { uri, port } of [
    { uri: ipServer.url("edge.sysext.raw"), port: String(ipServer.port) },
    { uri: `oci://${ipRegistry.registry.host}/exts/edge:1`, port: ipRegistry.port },
  ]) {
    const { r, root } = await install(uri, port);
    assert.equal(r.code, 0, `${uri} (IP-only certificate) through the proxy: ${r.stderr}`);
    assert.deepEqual(
      await readFile(path.join(root, "var/lib/kairos/extensions/edge.sysext.raw")),
      bytes,
    );
  }

  for (const { uri, port } of [
    { uri: nameServer.url("edge.sysext.raw"), port: String(nameServer.port) },
    { uri: `oci://${nameRegistry.registry.host}/exts/edge:1`, port: nameRegistry.port },
  ]) {
    assert.match(uri, /127\.0\.0\.1/);
    const { r, root } = await install(uri, port);
    assert.equal(
      r.code,
      1,
      `${uri} (certificate for localhost only) through the proxy: ${r.stderr}`,
    );
    assert.match(r.stderr, /127\.0\.0\.1/);
    assert.match(r.stderr, /cert|altname|IP/i);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    await assert.rejects(readFile(path.join(root, "var/lib/kairos/extensions/edge.sysext.raw")));
  }

  // The name-only server addressed by its name passes: the name is checked (and sent as SNI).
  const byName = nameServer.url("edge.sysext.raw").replace("127.0.0.1", "localhost");
  const { r } = await install(byName, String(nameServer.port));
  assert.equal(r.code, 0, `${byName} through the proxy: ${r.stderr}`);
});
