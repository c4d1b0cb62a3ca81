// The catalog fixture the e2e suites share (issue 14): a real docker-registry, a real HTTPS
// server with a throwaway CA serving catalogs in the Kairos format (spec/kairos.md section 6),
// and versions of sample images pushed with `extctl publish`.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { runExtctl, type CliResult } from "./cli.js";
import { withHttpsServer, type TestHttpsServer } from "./https-server.js";
import { makeSampleImage } from "./images.js";
import { startRegistry, type Registry } from "./registry.js";
import { tempDir } from "./tmp.js";

export const ARCH = process.arch === "x64" ? "amd64" : process.arch;

export interface Published {
  version: string;
  /** host/repo@sha256:… as a catalog holds it. */
  reference: string;
  sha256: string;
}

export interface CatalogTagSpec {
  version: string;
  published?: Published;
  rollout?: number;
}

/** A registry, an HTTPS server and helpers to publish versions and serve catalogs. */
export async function catalogFixture(t: TestContext) {
  const registry: Registry = await startRegistry(t);
  const dir = await tempDir(t);
  const server: TestHttpsServer = await withHttpsServer(t, { dir: path.join(dir, "certs") });
  const publishVersion = async (
    name: string,
    version: string,
    release = "ID=_any\n",
    files: Record<string, string> = {},
    /** The release file's name; default NAME, which fits NAME.sysext.raw (install by name). */
    releaseName = name,
  ): Promise<Published> => {
    const file = await makeSampleImage(dir, {
      fileName: `${name}-${version}.raw`,
      releaseName,
      release,
      files: { [`usr/share/${name}/version`]: `${version}\n`, ...files },
    });
    const r = await runExtctl([
      "publish",
      file,
      `oci://${registry.host}/exts/${name}:${version}`,
      "--kind",
      "sysext",
      "--insecure-registry",
      registry.host,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const pinned = (JSON.parse(r.stdout) as { pinned: string }).pinned;
    const digest = pinned.slice(pinned.indexOf("@"));
    return {
      version,
      reference: `${registry.host}/exts/${name}${digest}`,
      sha256: createHash("sha256")
        .update(await readFile(file))
        .digest("hex"),
    };
  };
  const catalogJson = (
    layers: Record<string, { latest?: string; tags: CatalogTagSpec[] }>,
    generated = new Date().toISOString(),
  ) =>
    JSON.stringify({
      generated,
      repo: "test/extensions",
      layers: Object.entries(layers).map(([name, layer]) => ({
        name,
        ...(layer.latest ? { latest: layer.latest } : {}),
        tags: layer.tags.map((tag) => ({
          tag: tag.version,
          sysext: tag.published ? { [ARCH]: { oci: tag.published.reference } } : {},
          ...(tag.rollout === undefined ? {} : { rollout: { percent: tag.rollout } }),
        })),
      })),
    });
  const serveCatalog = (file: string, json: string) => {
    server.addFile(file, Buffer.from(json));
    return server.url(file);
  };
  const net = ["--ca-cert", server.caCert, "--insecure-registry", registry.host];
  return { registry, server, dir, publishVersion, catalogJson, serveCatalog, net };
}

/** SHA-256 (hex) of a file's bytes. */
export const sha256Of = async (file: string): Promise<string> =>
  createHash("sha256")
    .update(await readFile(file))
    .digest("hex");

/** Asserts that a CLI run exited 0, naming the step and its output otherwise. */
export function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r;
}
