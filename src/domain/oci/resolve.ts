// From what a reference or a layout tag names to one image manifest: an index is followed to the
// entry for the wanted platform (platform.ts decides which), whoever stores the documents.
import { ExtctlError } from "../../util/errors.js";
import {
  documentKind,
  parseImageManifest,
  parseIndex,
  type Descriptor,
  type DocumentOrigin,
  type ImageManifest,
} from "./manifest.js";
import { choosePlatform, formatPlatform, type Platform } from "./platform.js";

/** A manifest or index as fetched: media type as served (may be ""), digest, parsed JSON. */
export interface FetchedDocument {
  mediaType: string;
  digest: string;
  json: Record<string, unknown>;
}

/**
 * Where manifests are read from: a registry (by tag or digest) or the blobs of an image layout
 * (by descriptor). `origin` names it in the error for a malformed document.
 */
export interface ManifestStore {
  readonly origin: DocumentOrigin;
  manifest(target: string | Descriptor): Promise<FetchedDocument>;
}

export interface ResolvedImage {
  manifest: ImageManifest;
  /** Digest of the image manifest itself (not of the index that led to it). */
  digest: string;
  /** Digest of the index when the reference named one. */
  indexDigest?: string;
  platform?: Platform;
}

export interface ResolveOptions {
  /** The image as the user named it, for messages. */
  name: string;
  /** How the user picks another platform (their command's flag). */
  platformHint: string;
}

/** Fetches what `target` names and, for an index, the entry for the wanted platform. */
export async function resolveImage(
  store: ManifestStore,
  target: string | Descriptor,
  wanted: Platform,
  options: ResolveOptions,
): Promise<ResolvedImage> {
  const top = await store.manifest(target);
  if (documentKind(top.mediaType, top.json, store.origin) === "manifest") {
    return {
      manifest: parseImageManifest(top.mediaType, top.json, store.origin),
      digest: top.digest,
    };
  }
  const index = parseIndex(top.mediaType, top.json, store.origin);
  const entry = choosePlatform(index.manifests, wanted);
  if (!entry) {
    const available = index.manifests
      .map((m) => (m.platform ? formatPlatform(m.platform) : undefined))
      .filter((p): p is string => p !== undefined);
    throw new ExtctlError(
      "not-found",
      `${options.name} has no image for ${formatPlatform(wanted)} (it has: ${available.length > 0 ? [...new Set(available)].join(", ") : "no platforms"})`,
      { hint: options.platformHint },
    );
  }
  const child = await store.manifest(entry);
  if (documentKind(child.mediaType, child.json, store.origin) !== "manifest") {
    // One level is what docker, buildah and skopeo write; deeper nesting is refused, not
    // followed, so a hostile index cannot send us down a chain of fetches.
    throw new ExtctlError(
      "unsupported",
      `${options.name} nests an index inside an index, which extctl does not follow`,
    );
  }
  const resolved: ResolvedImage = {
    manifest: parseImageManifest(child.mediaType, child.json, store.origin),
    digest: child.digest,
    indexDigest: top.digest,
  };
  if (entry.platform) resolved.platform = entry.platform;
  return resolved;
}
