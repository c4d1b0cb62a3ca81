import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  layerCompression,
  layerDecompressor,
  sniffCompression,
} from "../../../../src/domain/oci/layer.js";

test("layer media types name their compression; anything else is no tar layer", () => {
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar"), "none");
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip"), "gzip");
  assert.equal(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip"), "gzip");
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd"), "zstd");
  assert.equal(
    layerCompression("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"),
    "zstd",
  );
  assert.equal(layerCompression("application/vnd.kairos.sysext.raw"), undefined);
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar+bzip2"), undefined);
  assert.equal(layerCompression("constructor"), undefined);
});

test("without a media type the magic decides, and short input is uncompressed", () => {
  assert.equal(sniffCompression(gzipSync(Buffer.from("x"))), "gzip");
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), "zstd");
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f])), "none");
  assert.equal(sniffCompression(Buffer.from("usr/")), "none");
  assert.equal(sniffCompression(Buffer.alloc(0)), "none");
});

async function through(compression: "none" | "gzip" | "zstd", data: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  const stream = Readable.from([data]).pipe(await layerDecompressor(compression));
  for await (const chunk of stream) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

test("each compression is undone by its stream", async () => {
  const data = Buffer.from("layer bytes ".repeat(1000));
  assert.deepEqual(await through("none", data), data);
  assert.deepEqual(await through("gzip", gzipSync(data)), data);
  const { compress } = await import("zstd-napi");
  assert.deepEqual(await through("zstd", compress(data)), data);
});
