// Catalogs in OCI registries: an artifact whose one layer titled *.json is the catalog and an
// optional layer titled the same plus .p7s its detached signature (pushed by `catalog publish`).
import type { Context } from "../../util/context.js";
import { ExtctlError } from "../../util/errors.js";
import { MEDIA, documentKind, parseImageManifest } from "../oci/manifest.js";
import {
  manifestSelector,
  parseReference,
  pinnedReference,
  type Reference,
} from "../oci/reference.js";
import { EMPTY_CONFIG, TITLE_ANNOTATION } from "../sources/oci/artifact.js";
import { RegistryClient, sha256Digest, type ClientOptions } from "../sources/oci/client.js";
import type { PullRequest } from "../sources/oci/pull-sources.js";
import { MAX_CATALOG_BYTES, MAX_CATALOG_SIGNATURE_BYTES, SIGNATURE_SUFFIX } from "./catalog.js";

export const CATALOG_ARTIFACT_TYPE = "application/vnd.extctl.catalog.v1+json";
const CATALOG_MEDIA_TYPE = "application/json";
const SIGNATURE_MEDIA_TYPE = "application/pkcs7-signature";
/** A detached PKCS#7 is a few KiB. */

export type RegistryOptions = PullRequest;

function clientOptions(options: RegistryOptions, actions: string[]): ClientOptions {
  return {
    actions,
    ...(options.creds === undefined ? {} : { creds: options.creds }),
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  };
}

/**
 * The catalog bytes (and signature, when the artifact has one) at an oci: URL, from the mirrors
 * registries.conf names for it or from the origin, as an install pulls.
 */
export async function fetchOciCatalog(
  ctx: Context,
  url: string,
  options: RegistryOptions,
): Promise<{ bytes: Buffer; signature?: Buffer }> {
  const { fromPullSources } = await import("../sources/oci/pull-sources.js");
  const { value, client } = await fromPullSources(ctx, parseReference(url), options, (c, source) =>
    readCatalogArtifact(c, source.ref, url),
  );
  await client.close();
  return value;
}

async function readCatalogArtifact(
  client: RegistryClient,
  ref: Reference,
  url: string,
): Promise<{ bytes: Buffer; signature?: Buffer }> {
  const fetched = await client.getManifest(manifestSelector(ref));
  if (documentKind(fetched.mediaType, fetched.json) !== "manifest") {
    throw new ExtctlError(
      "catalog",
      `${url} is an image index, not the manifest of a catalog; point at the catalog's manifest`,
    );
  }
  const manifest = parseImageManifest(fetched.mediaType, fetched.json);
  const titled = manifest.layers.filter((l) =>
    (l.annotations?.[TITLE_ANNOTATION] ?? "").endsWith(".json"),
  );
  if (titled.length !== 1) {
    throw new ExtctlError(
      "catalog",
      titled.length === 0
        ? `${url} has no layer titled *.json (${TITLE_ANNOTATION}), so it holds no catalog`
        : `${url} has ${titled.length} layers titled *.json; a catalog artifact holds one`,
    );
  }
  const layer = titled[0] as (typeof titled)[number];
  const title = layer.annotations?.[TITLE_ANNOTATION] as string;
  const bytes = await client.readBlob(layer, MAX_CATALOG_BYTES);
  const signatureLayer = manifest.layers.find(
    (l) => l.annotations?.[TITLE_ANNOTATION] === title + SIGNATURE_SUFFIX,
  );
  if (!signatureLayer) return { bytes };
  return { bytes, signature: await client.readBlob(signatureLayer, MAX_CATALOG_SIGNATURE_BYTES) };
}

/**
 * Pushes a catalog (and its signature) to `reference` as an artifact titled `title`; returns the
 * reference pinned to the manifest's digest.
 */
export async function pushOciCatalog(
  ctx: Context,
  reference: string,
  content: { bytes: Buffer; signature?: Buffer; title: string },
  options: RegistryOptions,
): Promise<{ pinned: string; digest: string }> {
  const ref = parseReference(reference);
  if (ref.tag === undefined) {
    throw new ExtctlError("usage", `push the catalog to a tag, not a digest: ${reference}`);
  }
  const client = await RegistryClient.create(ctx, ref, clientOptions(options, ["pull", "push"]));
  try {
    const blobs: { mediaType: string; data: Buffer; title: string }[] = [
      { mediaType: CATALOG_MEDIA_TYPE, data: content.bytes, title: content.title },
    ];
    if (content.signature) {
      blobs.push({
        mediaType: SIGNATURE_MEDIA_TYPE,
        data: content.signature,
        title: content.title + SIGNATURE_SUFFIX,
      });
    }
    const upload = async (digest: string, data: Buffer) => {
      if (await client.blobExists(digest)) return;
      await client.uploadBlob({ digest, size: data.length }, () => data, {
        chunkSize: 32 * 1024 * 1024,
      });
    };
    await upload(EMPTY_CONFIG.digest, Buffer.from("{}"));
    const layers = [];
    for (const blob of blobs) {
      const digest = sha256Digest(blob.data);
      await upload(digest, blob.data);
      layers.push({
        mediaType: blob.mediaType,
        digest,
        size: blob.data.length,
        annotations: { [TITLE_ANNOTATION]: blob.title },
      });
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        artifactType: CATALOG_ARTIFACT_TYPE,
        config: EMPTY_CONFIG,
        layers,
      }),
    );
    const digest = await client.putManifest(ref.tag, MEDIA.ociManifest, manifest);
    return { pinned: pinnedReference(ref, digest), digest };
  } finally {
    await client.close();
  }
}
