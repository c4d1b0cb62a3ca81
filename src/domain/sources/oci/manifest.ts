// The shapes of OCI / Docker v2 manifests and indexes, checked field by field: registries are
// untrusted input, so a descriptor is only used once its digest, size and media type are sane.
import { ExtctlError } from "../../../util/errors.js";
import type { ExtensionKind } from "../../store/layout.js";
import { unsafeNameReason } from "../../store/names.js";
import { MEDIA, isDigest, type Descriptor } from "./client.js";

export const ARTIFACT_TYPES: Readonly<Record<ExtensionKind, string>> = {
  sysext: "application/vnd.kairos.sysext.raw",
  confext: "application/vnd.kairos.confext.raw",
};

export const TITLE_ANNOTATION = "org.opencontainers.image.title";

/** The digest of `{}`, the empty config every ORAS artifact points at. */
export const EMPTY_CONFIG: Descriptor = {
  mediaType: MEDIA.ociEmpty,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
};

const MAX_ENTRIES = 1000;

export interface ImageManifest {
  mediaType: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  mediaType: string;
  manifests: Descriptor[];
}

function bad(what: string): never {
  throw new ExtctlError("registry", `the registry served a malformed manifest: ${what}`);
}

function stringMap(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) bad(`${what} is not an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") bad(`${what}.${k} is not a string`);
    out[k] = v;
  }
  return out;
}

export function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== "object" || value === null) bad(`${what} is not an object`);
  const v = value as Record<string, unknown>;
  if (typeof v.mediaType !== "string" || v.mediaType === "") bad(`${what} has no mediaType`);
  if (!isDigest(v.digest)) bad(`${what} has no sha256 digest`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    bad(`${what} has an invalid size`);
  }
  const desc: Descriptor = { mediaType: v.mediaType, digest: v.digest, size: v.size };
  const annotations = stringMap(v.annotations, `${what}.annotations`);
  if (annotations) desc.annotations = annotations;
  if (typeof v.artifactType === "string") desc.artifactType = v.artifactType;
  if (typeof v.data === "string") desc.data = v.data;
  if (v.platform !== undefined) {
    const p = v.platform as Record<string, unknown>;
    if (typeof p !== "object" || p === null) bad(`${what}.platform is not an object`);
    if (typeof p.os !== "string" || typeof p.architecture !== "string") {
      bad(`${what}.platform lacks os or architecture`);
    }
    desc.platform = { os: p.os, architecture: p.architecture };
    if (typeof p.variant === "string" && p.variant !== "") desc.platform.variant = p.variant;
  }
  return desc;
}

export function isIndexType(mediaType: string): boolean {
  return mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList;
}

export function isManifestType(mediaType: string): boolean {
  return mediaType === MEDIA.ociManifest || mediaType === MEDIA.dockerManifest;
}

/** What a fetched document is; OCI lets mediaType be absent, so the fields decide then. */
export function documentKind(
  mediaType: string,
  json: Record<string, unknown>,
): "index" | "manifest" {
  if (isIndexType(mediaType)) return "index";
  if (isManifestType(mediaType)) return "manifest";
  if (Array.isArray(json.manifests)) return "index";
  if (Array.isArray(json.layers)) return "manifest";
  if (json.schemaVersion === 1) {
    throw new ExtctlError(
      "unsupported",
      "the registry served a Docker schema 1 manifest, which extctl does not read",
      {
        hint: "re-push the image with a current tool (skopeo, buildah, docker)",
      },
    );
  }
  return bad(`unknown media type "${mediaType}"`);
}

export function parseIndex(mediaType: string, json: Record<string, unknown>): ImageIndex {
  if (!Array.isArray(json.manifests)) bad("an index without a manifests list");
  if (json.manifests.length > MAX_ENTRIES) bad(`an index with more than ${MAX_ENTRIES} entries`);
  return {
    mediaType,
    manifests: json.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`)),
  };
}

export function parseImageManifest(
  mediaType: string,
  json: Record<string, unknown>,
): ImageManifest {
  if (json.schemaVersion !== 2) bad("schemaVersion is not 2");
  if (!Array.isArray(json.layers)) bad("a manifest without a layers list");
  if (json.layers.length > MAX_ENTRIES) bad(`a manifest with more than ${MAX_ENTRIES} layers`);
  const manifest: ImageManifest = {
    mediaType,
    config: parseDescriptor(json.config, "config"),
    layers: json.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`)),
  };
  if (typeof json.artifactType === "string") manifest.artifactType = json.artifactType;
  const annotations = stringMap(json.annotations, "annotations");
  if (annotations) manifest.annotations = annotations;
  return manifest;
}

/** The extension kind an ORAS-style artifact declares, or undefined for a classic image. */
export function artifactKind(manifest: ImageManifest): ExtensionKind | undefined {
  for (const kind of ["sysext", "confext"] as const) {
    const type = ARTIFACT_TYPES[kind];
    if (manifest.artifactType === type || manifest.config.mediaType === type) return kind;
  }
  return undefined;
}

/** A file name the store may take: a safe (names.ts) `*.raw` name. */
export function isPlainRawName(name: string): boolean {
  return name.length > 4 && name.endsWith(".raw") && unsafeNameReason(name) === undefined;
}
