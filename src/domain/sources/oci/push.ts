// Publishing an extension image as an ORAS-compatible artifact (artifactType, title annotation,
// empty config), optionally as one platform of a multi-arch index kept at the tag.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import type { Context } from "../../../util/context.js";
import { ExtctlError, fsError } from "../../../util/errors.js";
import type { ExtensionKind } from "../../store/layout.js";
import { MEDIA, documentKind, parseIndex, type Descriptor } from "../../oci/manifest.js";
import {
  formatPlatform,
  hostPlatform,
  parsePlatform,
  samePlatform,
  type Platform,
} from "../../oci/platform.js";
import { formatReference, parseReference, pinnedReference } from "../../oci/reference.js";
import { ARTIFACT_TYPES, EMPTY_CONFIG, TITLE_ANNOTATION, isPlainRawName } from "./artifact.js";
import { RegistryClient, sha256Digest, type ClientOptions } from "./client.js";

export const DEFAULT_CHUNK_SIZE = 32 * 1024 * 1024;

export interface PushRequest {
  /** Host path of the image file. */
  file: string;
  /** Where to push: oci://registry/repo[:tag]. */
  reference: string;
  /** Default: from the file name (*.confext.raw is a confext, *.sysext.raw a sysext). */
  kind?: ExtensionKind;
  /** Publish as this platform's entry of an index at the tag. */
  platform?: string;
  /** Keep the other platforms of the index already at the tag (add or replace ours). */
  index?: boolean;
  /** Repositories on the same registry that may already hold the blob (cross-repository mount). */
  mountFrom?: string[];
  creds?: string;
  caCerts?: string[];
  insecureRegistries?: string[];
  /** Blobs larger than this go up in PATCH chunks of this size. */
  chunkSize?: number;
}

export type BlobOutcome = "uploaded" | "mounted" | "existed";

export interface PushResult {
  /** oci://registry/repo:tag@sha256:... for what the tag now points to. */
  pinned: string;
  /** What the tag points to: the index when one was written, else the manifest. */
  digest: string;
  manifestDigest: string;
  indexDigest?: string;
  platform?: string;
  kind: ExtensionKind;
  artifactType: string;
  name: string;
  layer: { digest: string; size: number; outcome: BlobOutcome };
}

export function kindFromName(name: string): ExtensionKind | undefined {
  if (name.endsWith(".confext.raw")) return "confext";
  if (name.endsWith(".sysext.raw")) return "sysext";
  return undefined;
}

async function hashFile(file: string, onBytes: (n: number) => void): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      hash.update(chunk as Buffer);
      onBytes((chunk as Buffer).length);
    }
  } catch (e) {
    throw fsError(e, `read ${file}`);
  }
  return `sha256:${hash.digest("hex")}`;
}

/** The artifact manifest: deterministic, so the same file always gets the same digest. */
export function artifactManifest(artifactType: string, layer: Descriptor): Buffer {
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    artifactType,
    config: EMPTY_CONFIG,
    layers: [layer],
  };
  return Buffer.from(JSON.stringify(manifest));
}

/** Index entries with ours added, replacing any entry for the same platform. */
export function mergeIndexEntries(
  existing: readonly Descriptor[],
  entry: Descriptor & { platform: Platform },
): Descriptor[] {
  const others = existing.filter((d) => !(d.platform && samePlatform(entry.platform, d.platform)));
  return [...others, entry];
}

export async function pushArtifact(ctx: Context, request: PushRequest): Promise<PushResult> {
  const ref = parseReference(request.reference);
  if (ref.digest !== undefined) {
    throw new ExtctlError(
      "usage",
      `publish needs a tag to push to, not a digest (${formatReference(ref)})`,
      {
        hint: "write the destination as oci://REGISTRY/REPOSITORY:TAG",
      },
    );
  }
  const tag = ref.tag as string;
  const name = path.basename(request.file);
  if (!isPlainRawName(name)) {
    throw new ExtctlError("usage", `${name} is not a plain *.raw file name, which installs need`, {
      hint: "rename it to NAME.sysext.raw or NAME.confext.raw",
    });
  }
  const kind = request.kind ?? kindFromName(name);
  if (kind === undefined) {
    throw new ExtctlError("usage", `cannot tell whether ${name} is a sysext or a confext`, {
      hint: "name it *.sysext.raw or *.confext.raw, or pass --kind",
    });
  }
  let size: number;
  try {
    const st = await stat(request.file);
    if (!st.isFile()) throw new ExtctlError("usage", `${request.file} is not a regular file`);
    size = st.size;
  } catch (e) {
    throw fsError(e, `read ${request.file}`);
  }
  const platform =
    request.platform !== undefined
      ? parsePlatform(request.platform)
      : request.index
        ? hostPlatform()
        : undefined;

  const options: ClientOptions = { actions: ["pull", "push"] };
  if (request.creds !== undefined) options.creds = request.creds;
  if (request.caCerts !== undefined) options.caCerts = request.caCerts;
  if (request.insecureRegistries !== undefined)
    options.insecureRegistries = request.insecureRegistries;
  if (request.mountFrom !== undefined) options.alsoPull = request.mountFrom;
  const client = await RegistryClient.create(ctx, ref, options);
  try {
    const hashing = ctx.progress(`hashing ${name}`, size);
    const digest = await hashFile(request.file, (n) => hashing.tick(n));
    hashing.stop();
    const artifactType = ARTIFACT_TYPES[kind];
    const layer: Descriptor = {
      mediaType: artifactType,
      digest,
      size,
      annotations: { [TITLE_ANNOTATION]: name },
    };

    let outcome: BlobOutcome;
    let location: string | undefined;
    if (await client.blobExists(digest)) {
      outcome = "existed";
    } else {
      outcome = "uploaded";
      for (const from of request.mountFrom ?? []) {
        const mounted = await client.mountBlob(digest, from);
        if (mounted === true) {
          outcome = "mounted";
          break;
        }
        location = mounted;
      }
    }
    if (outcome === "uploaded") {
      const progress = ctx.progress(`pushing ${name}`, size);
      try {
        await client.uploadBlob(
          { digest, size },
          (start, end): Readable | Buffer =>
            end > start
              ? createReadStream(request.file, { start, end: end - 1, highWaterMark: 1024 * 1024 })
              : Buffer.alloc(0),
          {
            chunkSize: request.chunkSize ?? DEFAULT_CHUNK_SIZE,
            ...(location !== undefined ? { location } : {}),
            onBytes: (n) => progress.tick(n),
          },
        );
      } finally {
        progress.stop();
      }
    }
    ctx.log.debug(`layer ${digest}: ${outcome}`);

    if (!(await client.blobExists(EMPTY_CONFIG.digest))) {
      await client.uploadBlob(EMPTY_CONFIG, () => Buffer.from("{}"), {
        chunkSize: DEFAULT_CHUNK_SIZE,
      });
    }

    const manifestBytes = artifactManifest(artifactType, layer);
    const manifestDigest = sha256Digest(manifestBytes);
    const result: PushResult = {
      pinned: "",
      digest: manifestDigest,
      manifestDigest,
      kind,
      artifactType,
      name,
      layer: { digest, size, outcome },
    };
    if (platform === undefined) {
      await client.putManifest(tag, MEDIA.ociManifest, manifestBytes);
    } else {
      await client.putManifest(manifestDigest, MEDIA.ociManifest, manifestBytes);
      let existing: Descriptor[] = [];
      if (request.index) {
        const current = await client.findManifest(tag);
        if (current) {
          if (documentKind(current.mediaType, current.json) !== "index") {
            throw new ExtctlError(
              "exists",
              `${formatReference(ref)} holds a single manifest, not a multi-arch index, so --index cannot add to it`,
              {
                hint: "publish to another tag, or without --index to replace it",
              },
            );
          }
          existing = parseIndex(current.mediaType, current.json).manifests;
        }
      }
      const entry = {
        mediaType: MEDIA.ociManifest,
        digest: manifestDigest,
        size: manifestBytes.length,
        artifactType,
        platform,
      };
      const index = {
        schemaVersion: 2,
        mediaType: MEDIA.ociIndex,
        manifests: mergeIndexEntries(existing, entry),
      };
      const indexBytes = Buffer.from(JSON.stringify(index));
      result.indexDigest = await client.putManifest(tag, MEDIA.ociIndex, indexBytes);
      result.digest = result.indexDigest;
      result.platform = formatPlatform(platform);
    }
    result.pinned = pinnedReference(ref, result.digest);
    return result;
  } finally {
    await client.close();
  }
}
