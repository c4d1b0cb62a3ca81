// Container images on disk as build sources: an OCI image layout (a directory or a tar of one)
// and `docker save` archives. Yields the image's layers, bottom first, as byte ranges to stream.
import { open, stat } from "node:fs/promises";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "../../../util/errors.js";
import { parseIndex, type Descriptor, type DocumentOrigin } from "../../oci/manifest.js";
import type { Platform } from "../../oci/platform.js";
import { resolveImage, type FetchedDocument, type ManifestStore } from "../../oci/resolve.js";
import { indexTar, type TarMember } from "./tar-index.js";
import type { LayerArchive } from "./tar.js";

export interface ImageLayers {
  describe: string;
  /** Bottom layer first. */
  layers: LayerArchive[];
}

const MAX_JSON = 4 * 1024 * 1024;

/** Files of an image bundle, whether it is a directory or a tar. */
interface Bundle {
  describe: string;
  has(name: string): boolean | Promise<boolean>;
  readJson(name: string): Promise<unknown>;
  archive(name: string, describe: string, digest?: string): Promise<LayerArchive>;
}

class DirBundle implements Bundle {
  constructor(readonly dir: string) {}
  get describe(): string {
    return this.dir;
  }
  async has(name: string): Promise<boolean> {
    return stat(path.join(this.dir, name)).then(
      () => true,
      () => false,
    );
  }
  async readJson(name: string): Promise<unknown> {
    const file = path.join(this.dir, name);
    try {
      const handle = await open(file, "r");
      try {
        const st = await handle.stat();
        if (st.size > MAX_JSON) throw new ExtctlError("format", `${file} is too large for JSON`);
        return parseJson((await handle.readFile()).toString("utf8"), file);
      } finally {
        await handle.close();
      }
    } catch (e) {
      throw fsError(e, `read ${file}`);
    }
  }
  async archive(name: string, describe: string, digest?: string): Promise<LayerArchive> {
    const file = path.join(this.dir, name);
    const st = await stat(file).catch((e: unknown) => {
      throw fsError(e, `read ${describe}`);
    });
    return { describe, path: file, start: 0, length: st.size, ...(digest ? { digest } : {}) };
  }
}

class TarBundle implements Bundle {
  constructor(
    readonly file: string,
    private readonly members: Map<string, TarMember>,
  ) {}
  get describe(): string {
    return this.file;
  }
  has(name: string): boolean {
    return this.members.has(name);
  }
  private member(name: string): TarMember {
    let m = this.members.get(name);
    // docker save links repeated layers to the first copy.
    for (let hops = 0; m && (m.type === "1" || m.type === "2") && hops < 8; hops++) {
      const target =
        m.type === "2"
          ? path.posix.normalize(path.posix.join(path.posix.dirname(name), m.linkname))
          : m.linkname;
      m = this.members.get(target.replace(/^\.?\//, ""));
    }
    if (m === undefined) {
      throw new ExtctlError("format", `${this.file} has no member ${name}`, {
        hint: "the image archive is incomplete; export it again",
      });
    }
    return m;
  }
  async readJson(name: string): Promise<unknown> {
    const m = this.member(name);
    if (m.size > MAX_JSON) throw new ExtctlError("format", `${name} in ${this.file} is too large`);
    const handle = await open(this.file, "r");
    try {
      const buf = Buffer.alloc(m.size);
      await handle.read(buf, 0, m.size, m.offset);
      return parseJson(buf.toString("utf8"), `${this.file}:${name}`);
    } finally {
      await handle.close();
    }
  }
  async archive(name: string, describe: string, digest?: string): Promise<LayerArchive> {
    const m = this.member(name);
    return {
      describe,
      path: this.file,
      start: m.offset,
      length: m.size,
      ...(digest ? { digest } : {}),
    };
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ExtctlError("format", `${what} is not valid JSON`);
  }
}

const REF_NAME = "org.opencontainers.image.ref.name";

function blobPath(digest: string): string {
  const [alg, hex] = digest.split(":");
  return `blobs/${alg}/${hex}`;
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ExtctlError("format", `${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** The layout's blobs as a manifest store: a document is found by the descriptor naming it. */
class LayoutManifests implements ManifestStore {
  readonly origin: DocumentOrigin;
  constructor(private readonly bundle: Bundle) {
    this.origin = { code: "format", says: `the OCI layout ${bundle.describe} holds` };
  }
  async manifest(target: string | Descriptor): Promise<FetchedDocument> {
    const digest = typeof target === "string" ? target : target.digest;
    const json = asObject(await this.bundle.readJson(blobPath(digest)), `blob ${digest}`);
    const declared = typeof json.mediaType === "string" ? json.mediaType : "";
    return {
      mediaType: typeof target === "string" ? declared : target.mediaType,
      digest,
      json,
    };
  }
}

async function layersOfOci(
  bundle: Bundle,
  tag: string | undefined,
  platform: Platform,
  platformHint: string,
): Promise<ImageLayers> {
  const store = new LayoutManifests(bundle);
  const what = `${bundle.describe}/index.json`;
  const all = parseIndex(
    "",
    asObject(await bundle.readJson("index.json"), what),
    store.origin,
  ).manifests;
  const refName = (d: Descriptor) => d.annotations?.[REF_NAME];
  let chosen: Descriptor;
  if (tag !== undefined) {
    const tagged = all.find((d) => refName(d) === tag || refName(d)?.endsWith(`:${tag}`));
    if (!tagged) {
      const tags = all.map(refName).filter(Boolean).join(", ") || "none";
      throw new ExtctlError(
        "not-found",
        `the OCI layout ${bundle.describe} has no tag ${tag} (tags: ${tags})`,
      );
    }
    chosen = tagged;
  } else if (all.length === 1) {
    chosen = all[0] as Descriptor;
  } else {
    const tags = all.map(refName).filter(Boolean).join(", ");
    throw new ExtctlError(
      "ambiguous",
      `the OCI layout ${bundle.describe} holds ${all.length} images; name one with oci-layout:DIR:TAG (tags: ${tags})`,
    );
  }
  const describe = tag ? `${bundle.describe}:${tag}` : bundle.describe;
  const { manifest } = await resolveImage(store, chosen, platform, {
    name: describe,
    platformHint,
  });
  return {
    describe,
    layers: await Promise.all(
      manifest.layers.map((d, i) =>
        bundle.archive(blobPath(d.digest), `layer ${i + 1} (${d.digest.slice(0, 19)})`, d.digest),
      ),
    ),
  };
}

async function layersOfDockerSave(bundle: Bundle, tag: string | undefined): Promise<ImageLayers> {
  const manifest = await bundle.readJson("manifest.json");
  if (!Array.isArray(manifest) || manifest.length === 0) {
    throw new ExtctlError("format", `${bundle.describe} has an empty manifest.json`);
  }
  const images = manifest as { RepoTags?: string[]; Layers?: string[] }[];
  let image = images[0];
  if (tag !== undefined) {
    image = images.find((m) => m.RepoTags?.some((t) => t === tag || t.endsWith(`:${tag}`)));
    if (!image) throw new ExtctlError("not-found", `${bundle.describe} has no image tagged ${tag}`);
  } else if (images.length > 1) {
    throw new ExtctlError(
      "ambiguous",
      `${bundle.describe} holds ${images.length} images; name one with :TAG`,
    );
  }
  const names = image?.Layers ?? [];
  return {
    describe: bundle.describe,
    layers: await Promise.all(names.map((n, i) => bundle.archive(n, `layer ${i + 1} (${n})`))),
  };
}

/** True when `file` is an uncompressed tar holding an OCI layout or a `docker save` image. */
export async function imageArchiveMembers(
  file: string,
): Promise<Map<string, TarMember> | undefined> {
  try {
    const members = await indexTar(file);
    if (members.has("index.json") || members.has("manifest.json")) return members;
  } catch {
    // Not a plain tar: a compressed rootfs, which the tar source reads.
  }
  return undefined;
}

/** Splits "DIR[:TAG]" where DIR may itself contain colons only if it exists as given. */
async function splitTag(spec: string): Promise<[string, string | undefined]> {
  if (
    await stat(spec).then(
      () => true,
      () => false,
    )
  )
    return [spec, undefined];
  const colon = spec.lastIndexOf(":");
  if (colon > 0 && !spec.slice(colon + 1).includes("/")) {
    return [spec.slice(0, colon), spec.slice(colon + 1)];
  }
  return [spec, undefined];
}

/**
 * Opens `oci-layout:DIR[:TAG]` (a directory or a tar) or a `docker save` archive `FILE[:TAG]`;
 * an index in a layout yields its entry for `platform` (`platformHint` says how to pick another).
 */
export async function openImage(
  spec: string,
  platform: Platform,
  platformHint: string,
): Promise<ImageLayers> {
  const [location, tag] = await splitTag(spec);
  let st;
  try {
    st = await stat(location);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") {
      throw new ExtctlError("not-found", `the image ${location} does not exist`, {
        hint: "give the path of an OCI layout directory or tar, or a `docker save` archive",
      });
    }
    throw fsError(e, `read ${location}`);
  }
  let bundle: Bundle;
  if (st.isDirectory()) {
    bundle = new DirBundle(location);
  } else {
    const members = await imageArchiveMembers(location);
    if (!members) {
      throw new ExtctlError(
        "format",
        `${location} is neither an OCI layout nor a docker save archive`,
      );
    }
    bundle = new TarBundle(location, members);
  }
  if (await bundle.has("index.json")) return layersOfOci(bundle, tag, platform, platformHint);
  if (await bundle.has("manifest.json")) return layersOfDockerSave(bundle, tag);
  throw new ExtctlError("format", `${location} holds no index.json or manifest.json`, {
    hint: "give an OCI image layout (oci-layout:DIR[:TAG]) or a `docker save` archive",
  });
}
