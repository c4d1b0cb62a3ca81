// The shapes of OCI / Docker v2 descriptors, manifests and indexes, checked field by field
// whether a registry or a layout on disk served them: a descriptor is used only once sane.
import { ExtctlError, type ErrorCode } from "../../util/errors.js";
import type { Platform } from "./platform.js";

export const MEDIA = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  data?: string;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: unknown): value is string {
  return typeof value === "string" && DIGEST_RE.test(value);
}

/**
 * Who served a document, for the error when it is malformed: a registry's is a failure of that
 * source (a mirror falls through to the next), a layout's is a bad file the user gave.
 */
export interface DocumentOrigin {
  code: ErrorCode;
  /** Starts the message: "the registry served", "the OCI layout DIR holds". */
  says: string;
}

export const FROM_REGISTRY: DocumentOrigin = { code: "registry", says: "the registry served" };

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

function bad(origin: DocumentOrigin, what: string): never {
  throw new ExtctlError(origin.code, `${origin.says} a malformed manifest: ${what}`);
}

function stringMap(
  value: unknown,
  what: string,
  origin: DocumentOrigin,
): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) bad(origin, `${what} is not an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") bad(origin, `${what}.${k} is not a string`);
    out[k] = v;
  }
  return out;
}

export function parseDescriptor(
  value: unknown,
  what: string,
  origin: DocumentOrigin = FROM_REGISTRY,
): Descriptor {
  if (typeof value !== "object" || value === null) bad(origin, `${what} is not an object`);
  const v = value as Record<string, unknown>;
  if (typeof v.mediaType !== "string" || v.mediaType === "")
    bad(origin, `${what} has no mediaType`);
  if (!isDigest(v.digest)) bad(origin, `${what} has no sha256 digest`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    bad(origin, `${what} has an invalid size`);
  }
  const desc: Descriptor = { mediaType: v.mediaType, digest: v.digest, size: v.size };
  const annotations = stringMap(v.annotations, `${what}.annotations`, origin);
  if (annotations) desc.annotations = annotations;
  if (typeof v.artifactType === "string") desc.artifactType = v.artifactType;
  if (typeof v.data === "string") desc.data = v.data;
  if (v.platform !== undefined) {
    const p = v.platform as Record<string, unknown>;
    if (typeof p !== "object" || p === null) bad(origin, `${what}.platform is not an object`);
    if (typeof p.os !== "string" || typeof p.architecture !== "string") {
      bad(origin, `${what}.platform lacks os or architecture`);
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
  origin: DocumentOrigin = FROM_REGISTRY,
): "index" | "manifest" {
  if (isIndexType(mediaType)) return "index";
  if (isManifestType(mediaType)) return "manifest";
  if (Array.isArray(json.manifests)) return "index";
  if (Array.isArray(json.layers)) return "manifest";
  if (json.schemaVersion === 1) {
    throw new ExtctlError(
      "unsupported",
      `${origin.says} a Docker schema 1 manifest, which extctl does not read`,
      {
        hint: "re-push the image with a current tool (skopeo, buildah, docker)",
      },
    );
  }
  return bad(origin, `unknown media type "${mediaType}"`);
}

export function parseIndex(
  mediaType: string,
  json: Record<string, unknown>,
  origin: DocumentOrigin = FROM_REGISTRY,
): ImageIndex {
  if (!Array.isArray(json.manifests)) bad(origin, "an index without a manifests list");
  if (json.manifests.length > MAX_ENTRIES)
    bad(origin, `an index with more than ${MAX_ENTRIES} entries`);
  return {
    mediaType,
    manifests: json.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`, origin)),
  };
}

export function parseImageManifest(
  mediaType: string,
  json: Record<string, unknown>,
  origin: DocumentOrigin = FROM_REGISTRY,
): ImageManifest {
  if (json.schemaVersion !== 2) bad(origin, "schemaVersion is not 2");
  if (!Array.isArray(json.layers)) bad(origin, "a manifest without a layers list");
  if (json.layers.length > MAX_ENTRIES)
    bad(origin, `a manifest with more than ${MAX_ENTRIES} layers`);
  const manifest: ImageManifest = {
    mediaType,
    config: parseDescriptor(json.config, "config", origin),
    layers: json.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`, origin)),
  };
  if (typeof json.artifactType === "string") manifest.artifactType = json.artifactType;
  const annotations = stringMap(json.annotations, "annotations", origin);
  if (annotations) manifest.annotations = annotations;
  return manifest;
}
