// registries.conf with the real CLI against two real docker-registry instances: the mirror serves
// while the origin is down, the origin while the mirror is down (or lacks the image, or corrupts
// it), a blocked registry is refused, and `insecure = true` stands in for --insecure-registry.
import assert from "node:assert/strict";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import {
  makeLayout,
  pushLayout,
  startCorruptingProxy,
  startRegistry,
  type Registry,
} from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { catalogFixture } from "../helpers/catalog-fixture.js";

const PEERS = ["docker-registry", "skopeo", "mksquashfs"];
const STORE = "var/lib/kairos/extensions";
/** No credentials or configuration from the machine running the tests. */
const ENV = {
  CONTAINERS_REGISTRIES_CONF: undefined,
  REGISTRY_AUTH_FILE: "",
  DOCKER_CONFIG: "",
  XDG_RUNTIME_DIR: "",
};

/** An image pushed to the origin as exts/hello:1 and, when given, to the mirror as cache/exts/hello:1. */
async function publish(t: TestContext, origin: Registry, mirror?: Registry): Promise<Buffer> {
  const dir = await tempDir(t);
  const file = await makeSampleImage(dir, {
    fileName: "hello.raw",
    release: "ID=_any\n",
    files: { "usr/share/hello/greeting": "hello from the registry\n" },
  });
  const data = await readFile(file);
  const layout = await makeLayout(t, [{ layers: [{ files: [{ name: "hello.raw", data }] }] }]);
  pushLayout(layout, `${origin.host}/exts/hello:1`);
  if (mirror) pushLayout(layout, `${mirror.host}/cache/exts/hello:1`);
  return data;
}

async function writeConf(root: string, text: string, name = "registries.conf"): Promise<string> {
  const dir = path.join(root, "etc/containers");
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** Origin and mirror both plain http, told so by registries.conf alone. */
function mirrorConf(origin: string, mirror: string): string {
  return `# the exts namespace of the origin, with a pull-through copy
[[registry]]
prefix = "${origin}/exts"
location = "${origin}/exts"
insecure = true

[[registry.mirror]]
location = "${mirror}/cache/exts"
insecure = true
`;
}

interface Door {
  host: string;
  /** Closes the port: connections are refused from now on, as from a registry that is down. */
  close(): Promise<void>;
}

/** A TCP forwarder in front of a registry, so that a test can take it down and keep the rest. */
async function door(t: TestContext, registry: Registry): Promise<Door> {
  const [, port] = registry.host.split(":");
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
    return closed;
  };
  t.after(close);
  return { host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, close };
}

async function install(root: string, host: string, extra: string[] = []) {
  return runExtctl(
    ["--root", root, "-v", "sysext", "install", `oci://${host}/exts/hello:1`, ...extra],
    { env: ENV },
  );
}

async function stored(root: string): Promise<Buffer> {
  assert.deepEqual(await readdir(path.join(root, STORE)), ["hello.raw"]);
  return readFile(path.join(root, STORE, "hello.raw"));
}

test("the mirror serves while the origin is down", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const origin = await startRegistry(t);
  const mirror = await startRegistry(t);
  const data = await publish(t, origin, mirror);
  const originDoor = await door(t, origin);
  const root = await tempRoot(t);
  const conf = await writeConf(root, mirrorConf(originDoor.host, mirror.host));
  await originDoor.close();
  const r = await install(root, originDoor.host);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await stored(root), data);
  assert.match(
    r.stderr,
    new RegExp(
      `oci://${originDoor.host}/exts/hello:1: served by the mirror ${mirror.host}/cache/exts/hello:1 \\(${conf}:7\\)`,
    ),
  );
});

test("the origin serves while the mirror is down, or when the mirror lacks the image", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const origin = await startRegistry(t);
  const mirror = await startRegistry(t);
  const empty = await startRegistry(t);
  const data = await publish(t, origin, mirror);
  const mirrorDoor = await door(t, mirror);
  const root = await tempRoot(t);
  await writeConf(root, mirrorConf(origin.host, mirrorDoor.host));
  await mirrorDoor.close();
  const r = await install(root, origin.host);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await stored(root), data);
  assert.match(
    r.stderr,
    new RegExp(
      `the mirror ${mirrorDoor.host}/cache/exts/hello:1 failed: cannot reach ${mirrorDoor.host}: ECONNREFUSED.*trying the next source`,
    ),
  );
  assert.match(r.stderr, new RegExp(`served by the origin ${origin.host}/exts/hello:1`));
  // A mirror that answers 404 for the manifest falls through as well.
  const again = await tempRoot(t);
  await writeConf(again, mirrorConf(origin.host, empty.host));
  const r404 = await install(again, origin.host);
  assert.equal(r404.code, 0, r404.stderr);
  assert.match(
    r404.stderr,
    new RegExp(`the mirror ${empty.host}/cache/exts/hello:1 failed: .*not found`),
  );
  assert.deepEqual(await stored(again), data);
});

test("a mirror that corrupts the bytes is caught by the digests, warned about, and the origin used", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const origin = await startRegistry(t);
  const mirror = await startRegistry(t);
  const data = await publish(t, origin, mirror);
  const lying = await startCorruptingProxy(t, mirror.url);
  const root = await tempRoot(t);
  await writeConf(root, mirrorConf(origin.host, lying));
  const r = await runExtctl(
    ["--root", root, "sysext", "install", `oci://${origin.host}/exts/hello:1`],
    { env: ENV },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `warning: the mirror ${lying}/cache/exts/hello:1 failed: .*digest.*trying the next source`,
    ),
  );
  assert.deepEqual(await stored(root), data);
});

test("a blocked registry is refused, naming the file; a drop-in overrides the main file", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const origin = await startRegistry(t);
  await publish(t, origin);
  const root = await tempRoot(t);
  await writeConf(root, `[[registry]]\nlocation = "${origin.host}"\ninsecure = true\n`);
  await mkdir(path.join(root, "etc/containers/registries.conf.d"), { recursive: true });
  const dropIn = await writeConf(
    root,
    `[[registry]]\nlocation = "${origin.host}"\nblocked = true\n`,
    "registries.conf.d/50-block.conf",
  );
  const r = await install(root, origin.host, ["--insecure-registry", origin.host]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `oci://${origin.host}/exts/hello:1 is blocked by ${dropIn}:1 \\(prefix "${origin.host}", blocked = true\\)`,
    ),
  );
  assert.deepEqual(await readdir(path.join(root, STORE)).catch(() => []), []);
});

test("insecure = true stands in for --insecure-registry; without either, plain http is refused", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const origin = await startRegistry(t);
  const data = await publish(t, origin);
  const root = await tempRoot(t);
  const plain = await install(root, origin.host);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /does not speak TLS/);
  await writeConf(root, `[[registry]]\nlocation = "${origin.host}"\ninsecure = true\n`);
  const r = await install(root, origin.host);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await stored(root), data);
  // A broken file is an error naming its line, not a silent fallback.
  await writeConf(root, `[[registry]]\nlocation = "${origin.host}\n`);
  const broken = await install(root, origin.host, ["--insecure-registry", origin.host]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /registries\.conf:2: a string is not closed/);
});

// Issue 24 item 2: blocked = true held for one spelling of a registry only; the connection reads
// every one of these as the same host and port, so each must be refused.
test("a blocked registry is refused under every spelling of its host and port, also from a catalog entry", async (t) => {
  if (!requirePeers(t, [...PEERS, "openssl"], { root: true })) return;
  const f = await catalogFixture(t);
  const port = f.registry.host.split(":")[1] as string;
  const published = await f.publishVersion("hello", "1.0.0");
  const ref = (host: string) => `oci://${host}/exts/hello:1.0.0`;
  const fetchAs = (root: string, uri: string, host: string) =>
    runExtctl(["--root", root, "sysext", "install", uri, "--insecure-registry", host], {
      env: ENV,
    });

  // Unblocked, two of the spellings reach the registry: they are the same host to the connection.
  for (const host of [`LOCALHOST:0${port}`, `0x7f000001:${port}`]) {
    const open = await fetchAs(await tempRoot(t), ref(host), host);
    assert.equal(open.code, 0, `${host} unblocked: ${open.stderr}`);
  }

  const root = await tempRoot(t);
  const conf = await writeConf(
    root,
    `[[registry]]\nprefix = "localhost:${port}"\nblocked = true\n\n[[registry]]\nprefix = "127.0.0.1:${port}/exts"\nblocked = true\n`,
  );
  for (const host of [
    `localhost:${port}`,
    `LOCALHOST:${port}`,
    `LocalHost:0${port}`,
    `127.0.0.1:${port}`,
    `127.1:${port}`,
    `2130706433:${port}`,
    `0x7f000001:${port}`,
    `127.000.000.001:${port}`,
    `[::ffff:127.0.0.1]:${port}`,
    `127.0.0.1:0${port}`,
  ]) {
    const r = await fetchAs(root, ref(host), host);
    assert.equal(r.code, 1, `${host}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`is blocked by ${conf}:\\d+`), host);
  }
  // A host that cannot be normalised is an error, not a string that matches nothing.
  const bad = await fetchAs(root, ref(`127.0.0.256:${port}`), `127.0.0.256:${port}`);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /"127\.0\.0\.256:\d+" looks like an IPv4 address but is not one/);

  // A catalog entry naming the registry with an upper-case host.
  const upper = published.reference.replace(/^127\.0\.0\.1:/, "LOCALHOST:");
  const url = f.serveCatalog(
    "releases.json",
    f.catalogJson({
      hello: {
        latest: "1.0.0",
        tags: [{ version: "1.0.0", published: { ...published, reference: upper } }],
      },
    }),
  );
  const byName = (r: string) =>
    runExtctl(
      [
        "--root",
        r,
        "sysext",
        "install",
        "hello",
        "--catalog",
        url,
        ...f.net,
        "--insecure-registry",
        `localhost:${port}`,
      ],
      { env: ENV },
    );
  const unblocked = await byName(await tempRoot(t));
  assert.equal(unblocked.code, 0, `the catalog entry unblocked: ${unblocked.stderr}`);
  const blocked = await byName(root);
  assert.equal(blocked.code, 1, blocked.stderr);
  assert.match(
    blocked.stderr,
    new RegExp(`oci://localhost:${port}/exts/hello@sha256:[0-9a-f]{64} is blocked by ${conf}:1`),
  );
  const images = (await readdir(path.join(root, STORE)).catch(() => [])).filter((n) =>
    n.endsWith(".raw"),
  );
  assert.deepEqual(images, [], "nothing was stored");
});
