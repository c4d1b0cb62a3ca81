// Installing classic images (FROM scratch + COPY x.raw /) that skopeo pushed to a real
// docker-registry: layers in order, whiteouts, multi-arch choice, and refusals that leave no trace.
import assert from "node:assert/strict";
import { mkdir, readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { ociSource } from "../../src/domain/sources/oci/index.js";
import { createContext } from "../../src/util/context.js";
import type { Logger } from "../../src/util/log.js";
import { requirePeers } from "../helpers/peers.js";
import {
  makeLayout,
  pushLayout,
  startCorruptingProxy,
  startRegistry,
  type ImageSpec,
} from "../helpers/registry.js";
import { tempRoot } from "../helpers/tmp.js";

const PEERS = ["docker-registry", "skopeo"];

function quietLog(notes: string[] = []): Logger {
  return {
    verbosity: "normal",
    warn: (m) => notes.push(m),
    info: (m) => notes.push(m),
    debug: () => {},
  };
}

async function setup(t: TestContext) {
  const root = await tempRoot(t);
  const storeDir = path.join(root, "var/lib/kairos/extensions");
  await mkdir(storeDir, { recursive: true });
  const notes: string[] = [];
  const ctx = createContext({ root, log: quietLog(notes) });
  return { root, storeDir, ctx, notes };
}

/** Bytes that pass the store's image check (a squashfs magic), distinct per label. */
function raw(label: string, size = 4096): Buffer {
  const b = Buffer.alloc(Math.max(size, 4096));
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + label.charCodeAt(i % label.length)) & 0xff;
  b.write("hsqs", 0, "latin1");
  return b;
}

async function assertEmpty(dir: string): Promise<void> {
  assert.deepEqual(await readdir(dir), [], "the store must be left empty");
}

test("a single-arch classic image installs only its top-level raw file, byte for byte", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const image = raw("hello", 70_000);
  const layout = await makeLayout(t, [
    {
      layers: [
        {
          files: [
            { name: "hello.sysext.raw", data: image },
            { name: "usr/", type: "directory" },
            { name: "usr/bin/tool", data: "#!/bin/sh\n" },
            { name: "README", data: "not an image" },
          ],
        },
      ],
    },
  ]);
  pushLayout(layout, `${registry.host}/exts/hello:1.0`);
  const { storeDir, ctx, notes } = await setup(t);
  const fetched = await ociSource.fetch(ctx, {
    uri: `oci://${registry.host}/exts/hello:1.0`,
    kind: "sysext",
    storeDir,
    insecureRegistries: [registry.host],
  });
  assert.deepEqual(
    fetched.map((f) => f.name),
    ["hello.sysext.raw"],
  );
  assert.deepEqual(await readdir(storeDir), ["hello.sysext.raw"]);
  assert.deepEqual(await readFile(path.join(storeDir, "hello.sysext.raw")), image);
  assert.equal(fetched[0]?.size, image.length);
  assert.match(notes.join("\n"), /skipped \d+ entries .*README/);
});

test("layers apply in order: gzip, zstd and plain tar, with whiteouts", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const newA = raw("a-two", 5000);
  const c = raw("c", 4500);
  const layout = await makeLayout(t, [
    {
      layers: [
        {
          compression: "gzip",
          files: [
            { name: "./a.sysext.raw", data: raw("a-one") },
            { name: "./b.sysext.raw", data: raw("b") },
          ],
        },
        {
          compression: "zstd",
          files: [
            { name: ".wh.b.sysext.raw", data: "" },
            { name: "a.sysext.raw", data: newA },
          ],
        },
        { compression: "none", files: [{ name: "c.sysext.raw", data: c }] },
      ],
    },
  ]);
  pushLayout(layout, `${registry.host}/exts/layers:latest`);
  const { storeDir, ctx } = await setup(t);
  // A bare name gets :latest.
  const fetched = await ociSource.fetch(ctx, {
    uri: `oci://${registry.host}/exts/layers`,
    kind: "sysext",
    storeDir,
    insecureRegistries: [registry.host],
  });
  assert.deepEqual(fetched.map((f) => f.name).sort(), ["a.sysext.raw", "c.sysext.raw"]);
  assert.deepEqual((await readdir(storeDir)).sort(), ["a.sysext.raw", "c.sysext.raw"]);
  assert.deepEqual(await readFile(path.join(storeDir, "a.sysext.raw")), newA);
  assert.deepEqual(await readFile(path.join(storeDir, "c.sysext.raw")), c);
});

test("a multi-arch index pushed with skopeo --all yields the requested platform, or a clear error", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const amd = raw("amd64");
  const arm = raw("arm64");
  const specs: ImageSpec[] = [
    {
      platform: { os: "linux", architecture: "amd64" },
      layers: [{ files: [{ name: "multi.sysext.raw", data: amd }] }],
    },
    {
      platform: { os: "linux", architecture: "arm64", variant: "v8" },
      layers: [{ files: [{ name: "multi.sysext.raw", data: arm }] }],
    },
  ];
  pushLayout(await makeLayout(t, specs), `${registry.host}/exts/multi:1`, { all: true });
  const uri = `oci://${registry.host}/exts/multi:1`;
  const insecureRegistries = [registry.host];

  const arm64 = await setup(t);
  await ociSource.fetch(arm64.ctx, {
    uri,
    kind: "sysext",
    storeDir: arm64.storeDir,
    platform: "linux/arm64",
    insecureRegistries,
  });
  assert.deepEqual(await readFile(path.join(arm64.storeDir, "multi.sysext.raw")), arm);

  const amd64 = await setup(t);
  await ociSource.fetch(amd64.ctx, {
    uri,
    kind: "sysext",
    storeDir: amd64.storeDir,
    platform: "linux/amd64",
    insecureRegistries,
  });
  assert.deepEqual(await readFile(path.join(amd64.storeDir, "multi.sysext.raw")), amd);

  if (process.arch === "x64" || process.arch === "arm64") {
    const host = await setup(t);
    await ociSource.fetch(host.ctx, {
      uri,
      kind: "sysext",
      storeDir: host.storeDir,
      insecureRegistries,
    });
    const expected = process.arch === "x64" ? amd : arm;
    assert.deepEqual(await readFile(path.join(host.storeDir, "multi.sysext.raw")), expected);
  }

  const missing = await setup(t);
  await assert.rejects(
    ociSource.fetch(missing.ctx, {
      uri,
      kind: "sysext",
      storeDir: missing.storeDir,
      platform: "linux/s390x",
      insecureRegistries,
    }),
    (e: Error & { code?: string }) =>
      e.code === "not-found" &&
      /no image for linux\/s390x/.test(e.message) &&
      /linux\/amd64/.test(e.message),
  );
  await assertEmpty(missing.storeDir);
});

test("an image without a raw file at / is refused and leaves nothing", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const layout = await makeLayout(t, [
    {
      layers: [
        {
          files: [
            { name: "etc/", type: "directory" },
            { name: "etc/nested.sysext.raw", data: "deep" },
            { name: "link.sysext.raw", type: "symlink", linkname: "/etc/passwd" },
          ],
        },
      ],
    },
  ]);
  pushLayout(layout, `${registry.host}/exts/empty:1`);
  const { storeDir, ctx } = await setup(t);
  await assert.rejects(
    ociSource.fetch(ctx, {
      uri: `oci://${registry.host}/exts/empty:1`,
      kind: "sysext",
      storeDir,
      insecureRegistries: [registry.host],
    }),
    (e: Error & { code?: string }) =>
      e.code === "not-found" && /no \*\.raw file at \//.test(e.message),
  );
  await assertEmpty(storeDir);
});

for (const [label, hostile] of [
  ["a path climbing out with ..", "../escape.sysext.raw"],
  ["an absolute path", "/abs.sysext.raw"],
] as const) {
  test(`an image with ${label} is refused and nothing is written anywhere`, async (t) => {
    if (!requirePeers(t, PEERS, { root: true })) return;
    const registry = await startRegistry(t);
    const layout = await makeLayout(t, [
      {
        layers: [
          {
            files: [
              { name: "good.sysext.raw", data: raw("good") },
              { name: hostile, data: raw("evil") },
            ],
          },
        ],
      },
    ]);
    pushLayout(layout, `${registry.host}/exts/hostile:1`);
    const { root, storeDir, ctx } = await setup(t);
    await assert.rejects(
      ociSource.fetch(ctx, {
        uri: `oci://${registry.host}/exts/hostile:1`,
        kind: "sysext",
        storeDir,
        insecureRegistries: [registry.host],
      }),
      (e: Error & { code?: string }) => e.code === "format" && e.message.includes(hostile),
    );
    await assertEmpty(storeDir);
    assert.deepEqual((await readdir(path.dirname(storeDir))).sort(), ["extensions"]);
    assert.ok(!(await readdir(root)).includes("abs.sysext.raw"));
  });
}

test("an unknown tag is a clear not-found error", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  pushLayout(
    await makeLayout(t, [{ layers: [{ files: [{ name: "x.sysext.raw", data: "x" }] }] }]),
    `${registry.host}/exts/x:1`,
  );
  const { storeDir, ctx } = await setup(t);
  await assert.rejects(
    ociSource.fetch(ctx, {
      uri: `oci://${registry.host}/exts/x:nope`,
      kind: "sysext",
      storeDir,
      insecureRegistries: [registry.host],
    }),
    (e: Error & { code?: string }) =>
      e.code === "not-found" &&
      /manifest nope/.test(e.message) &&
      /MANIFEST_UNKNOWN/.test(e.message),
  );
  await assertEmpty(storeDir);
});

test("a byte flipped on the way is caught by the digest check and nothing is installed", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  pushLayout(
    await makeLayout(t, [
      {
        layers: [
          { compression: "none", files: [{ name: "x.sysext.raw", data: raw("x", 20_000) }] },
        ],
      },
    ]),
    `${registry.host}/exts/x:1`,
  );
  const proxy = await startCorruptingProxy(t, registry.url);
  const { storeDir, ctx } = await setup(t);
  await assert.rejects(
    ociSource.fetch(ctx, {
      uri: `oci://${proxy}/exts/x:1`,
      kind: "sysext",
      storeDir,
      insecureRegistries: [proxy],
    }),
    (e: Error & { code?: string }) => e.code === "checksum" && /corrupted/.test(e.message),
  );
  await assertEmpty(storeDir);
});

test("plain http is refused unless the registry is named insecure", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const { storeDir, ctx } = await setup(t);
  await assert.rejects(
    ociSource.fetch(ctx, { uri: `oci://${registry.host}/exts/x:1`, kind: "sysext", storeDir }),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === "tls" &&
      /does not speak TLS/.test(e.message) &&
      /--insecure-registry/.test(e.hint ?? ""),
  );
  await assertEmpty(storeDir);
});
