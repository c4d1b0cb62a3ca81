// Image layers as bytes: which compression a layer media type (or, without one, its first bytes)
// means, and the stream that undoes it. Install and build both unpack layers through here.
import { PassThrough, type Transform } from "node:stream";
import { createGunzip } from "node:zlib";

export type LayerCompression = "none" | "gzip" | "zstd";

const LAYER_MEDIA_TYPES: Readonly<Record<string, LayerCompression>> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
};

/** The compression a layer media type declares, or undefined for one that is no tar layer. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return Object.hasOwn(LAYER_MEDIA_TYPES, mediaType) ? LAYER_MEDIA_TYPES[mediaType] : undefined;
}

/** Bytes to read for sniffCompression. */
export const MAGIC_BYTES = 4;

/**
 * The compression the first bytes of a tar show: `docker save` layers and rootfs tarballs carry
 * no media type, so their magic is all there is.
 */
export function sniffCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (
    head.length >= 4 &&
    head[0] === 0x28 &&
    head[1] === 0xb5 &&
    head[2] === 0x2f &&
    head[3] === 0xfd
  ) {
    return "zstd";
  }
  return "none";
}

/** A stream from the stored bytes to the tar; zstd's decoder is loaded only when needed. */
export async function layerDecompressor(compression: LayerCompression): Promise<Transform> {
  if (compression === "gzip") return createGunzip();
  if (compression === "zstd") {
    const { createZstdDecompressStream, zstdReady } = await import("../image/decompress/zstd.js");
    await zstdReady();
    return createZstdDecompressStream();
  }
  return new PassThrough();
}
