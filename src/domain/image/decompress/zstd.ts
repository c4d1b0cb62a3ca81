// zstd decoding, bounded: every frame header is read first, so no window or block output is sized
// by a crafted one. Decoded by node:zlib's zstd (libzstd, Node >= 22.15 and 23.8) where the
// runtime has it, else by fzstd (pure JavaScript), loaded only then: the fallback for library
// users on an older Node. Callers await zstdReady() once before the synchronous functions.
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import type * as Fzstd from "fzstd";
import { ExtctlError } from "../../../util/errors.js";

/** The part of node:zlib's zstd API used here (@types/node follows the oldest Node supported). */
interface NativeZstd {
  zstdDecompressSync(input: Uint8Array, options: ZstdOptions): Buffer;
  createZstdDecompress(options: ZstdOptions): Transform;
  constants: { ZSTD_d_windowLogMax: number };
}
interface ZstdOptions {
  maxOutputLength?: number;
  chunkSize?: number;
  params?: Record<number, number>;
}

const native: NativeZstd | undefined =
  typeof (zlib as unknown as Partial<NativeZstd>).zstdDecompressSync === "function"
    ? (zlib as unknown as NativeZstd)
    : undefined;
let fzstd: typeof Fzstd | undefined;
let decoderKind: "native" | "fzstd" = native ? "native" : "fzstd";

/**
 * Loads the decoder: nothing to do with node:zlib's; fzstd otherwise. `use` picks one (the
 * tests and bench/decompress.ts compare both); "native" fails where the runtime has none.
 */
export async function zstdReady(use?: "native" | "fzstd"): Promise<void> {
  if (use === "native" && !native)
    throw new Error(`Node.js ${process.version} has no zstd in node:zlib`);
  if (use) decoderKind = use;
  if (decoderKind === "fzstd") fzstd ??= await import("fzstd");
}

/** The decoder in use: "native" (node:zlib) or "fzstd". */
export function zstdDecoder(): "native" | "fzstd" {
  return decoderKind;
}

function fallback(): typeof Fzstd {
  if (!fzstd) throw new Error("zstd: zstdReady() was not awaited before decoding");
  return fzstd;
}

/**
 * node:zlib's output buffer size. Its default (16 KiB, zlib's) makes a 128 KiB block come out in
 * 8 pieces joined by a copy, and keeps libzstd off its single-pass path (it decodes a frame
 * straight into the output only when the whole frame fits there): a block then took 1.5-2x the
 * time zstd-napi takes (bench/decompress.ts). A block gets a buffer its size; a layer's stream
 * 1 MiB pieces, for fewer trips through the stream machinery.
 */
const STREAM_CHUNK = 1024 * 1024;
/** node:zlib's smallest chunkSize (zlib.constants.Z_MIN_CHUNK). */
const MIN_CHUNK = 64;

/** zstd's default window limit as a log, handed to libzstd too (the walker checks it first). */
const WINDOW_LOG_MAX = 27;

/** The largest window a frame may ask for: zstd's own default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT 27). */
export const MAX_ZSTD_WINDOW = 128 * 1024 * 1024;

const FRAME_MAGIC = 0xfd2fb528;
/** The largest window a filesystem block's frame may ask for beyond its own size. */
const MAX_BLOCK_WINDOW = 8 * 1024 * 1024;

function corrupt(what: string, why: string): ExtctlError {
  return new ExtctlError("format", `${what} is corrupt: ${why}`, {
    hint: "the data is damaged; download or build it again",
  });
}

interface FrameHeader {
  /** Header length in bytes (from the magic on). */
  length: number;
  window: number;
  /** The frame content size, when the header gives it. */
  contentSize: number | undefined;
  checksum: boolean;
}

/** Parses a frame header at buf[at]; undefined when fewer bytes than it needs are there. */
function frameHeader(buf: Uint8Array, at: number, what: string): FrameHeader | undefined {
  if (buf.length < at + 5) return undefined;
  const fhd = buf[at + 4] as number;
  if (fhd & 0x08) throw corrupt(what, "a frame header sets its reserved bit");
  const singleSegment = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3] as number;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6] as number;
  const length = 5 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
  if (buf.length < at + length) return undefined;
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const fcsAt = at + length - fcsBytes;
  let contentSize: number | undefined;
  if (fcsBytes === 1) contentSize = buf[fcsAt];
  else if (fcsBytes === 2) contentSize = view.readUInt16LE(fcsAt) + 256;
  else if (fcsBytes === 4) contentSize = view.readUInt32LE(fcsAt);
  else if (fcsBytes === 8) contentSize = Number(view.readBigUInt64LE(fcsAt));
  let window: number;
  if (singleSegment) window = contentSize as number;
  else {
    const wd = buf[at + 5] as number;
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  return { length, window, contentSize, checksum: (fhd & 0x04) !== 0 };
}

/**
 * Follows the frame and block structure of a zstd stream as its bytes pass (block headers give
 * their sizes, so nothing is decoded), and refuses a frame whose window is too large before the
 * decoder allocates it.
 */
class FrameWalker {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes still to skip: a block's body, a checksum, a skippable frame. */
  private skip = 0;
  private phase: "frame" | "block" | "skippable-size" = "frame";
  private checksum = false;
  frames = 0;
  firstHeader: FrameHeader | undefined;

  constructor(private readonly what: string) {}

  feed(chunk: Uint8Array): void {
    let buf = this.pending.length
      ? Buffer.concat([this.pending, chunk])
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let at = 0;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - at);
        this.skip -= n;
        at += n;
        if (this.skip > 0) break;
      }
      if (this.phase === "frame") {
        if (buf.length < at + 4) break;
        const magic = buf.readUInt32LE(at);
        if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
          this.phase = "skippable-size";
          at += 4;
          continue;
        }
        if (magic !== FRAME_MAGIC)
          throw corrupt(this.what, "a frame does not start with zstd's magic");
        const header = frameHeader(buf, at, this.what);
        if (header === undefined) break;
        if (header.window > MAX_ZSTD_WINDOW)
          throw new ExtctlError(
            "unsupported",
            `${this.what} asks for a ${header.window}-byte window, more than the ${MAX_ZSTD_WINDOW} zstd decoders accept by default`,
          );
        this.frames++;
        this.firstHeader ??= header;
        this.checksum = header.checksum;
        at += header.length;
        this.phase = "block";
      } else if (this.phase === "skippable-size") {
        if (buf.length < at + 4) break;
        this.skip = buf.readUInt32LE(at);
        at += 4;
        this.phase = "frame";
      } else {
        if (buf.length < at + 3) break;
        const header =
          (buf[at] as number) | ((buf[at + 1] as number) << 8) | ((buf[at + 2] as number) << 16);
        at += 3;
        const type = (header >> 1) & 3;
        this.skip = type === 1 ? 1 : header >>> 3;
        if (header & 1) {
          this.skip += this.checksum ? 4 : 0;
          this.phase = "frame";
        }
      }
    }
    buf = buf.subarray(at);
    // Only a header's worth is ever kept back (block bodies are skipped, not buffered).
    this.pending = Buffer.from(buf);
  }

  /** Whether the stream ended at a frame boundary. */
  get complete(): boolean {
    return this.phase === "frame" && this.skip === 0 && this.pending.length === 0;
  }
}

function decoderError(what: string, e: unknown): ExtctlError {
  if (e instanceof ExtctlError) return e;
  return corrupt(what, (e as Error).message);
}

/**
 * Decodes one zstd frame holding a filesystem block. The frame must declare its size, at most
 * `maxOutput`, and be the only one.
 */
export function zstdDecompressBlock(input: Buffer, maxOutput: number): Buffer {
  const what = "a zstd block in the image";
  const walker = new FrameWalker(what);
  walker.feed(input);
  const size = walker.firstHeader?.contentSize;
  if (walker.frames !== 1 || !walker.complete)
    throw corrupt(
      what,
      walker.frames > 1 ? "it holds more than one frame" : "the frame is cut off",
    );
  if (size === undefined)
    throw corrupt(what, "the frame does not declare its size, so it cannot be bounded");
  if (size > maxOutput) throw corrupt(what, `it inflates past its size of ${maxOutput} bytes`);
  // fzstd sizes its buffer by the window (a single-segment frame's window is its size); a block
  // has no reason to ask for more than a few MiB.
  const window = walker.firstHeader?.window ?? 0;
  if (window > Math.max(size, MAX_BLOCK_WINDOW))
    throw corrupt(what, `its frame asks for a ${window}-byte window for ${size} bytes`);
  let out: Uint8Array;
  try {
    if (decoderKind === "native" && native)
      out = native.zstdDecompressSync(input, {
        // One byte over the size: a frame that lies about its size is caught below, not cut.
        maxOutputLength: size + 1,
        chunkSize: Math.max(MIN_CHUNK, size + 1),
        params: { [native.constants.ZSTD_d_windowLogMax]: WINDOW_LOG_MAX },
      });
    // Without an output buffer: fzstd runs ~3x faster (measured with bench/decompress.ts).
    else out = fallback().decompress(input);
  } catch (e) {
    throw decoderError(what, e);
  }
  if (out.length !== size) throw corrupt(what, `it holds ${out.length} bytes, not ${size}`);
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

/**
 * A plain Error for a stream: the reader of the stream (an OCI pull, a tar source) says which
 * layer or file it was, as it does for gzip.
 */
function streamError(what: string, e: unknown): Error {
  return new Error(decoderError(what, e).message, { cause: e });
}

/** A Transform that decodes a zstd stream (OCI layers, tar.zst sources) in bounded memory. */
export function createZstdDecompressStream(
  what = "the zstd data",
): Transform & { readonly frames: number } {
  const stream =
    decoderKind === "native" && native ? nativeStream(native, what) : fzstdStream(what);
  return Object.defineProperty(stream.transform, "frames", {
    get: () => stream.walker.frames,
  }) as Transform & { readonly frames: number };
}

function fzstdStream(what: string): { transform: Transform; walker: FrameWalker } {
  const walker = new FrameWalker(what);
  let stream: Transform | undefined = undefined;
  const decoder = new (fallback().Decompress)((data) => {
    // fzstd may hand out a view of its own window, which the next block overwrites.
    if (data.length) stream?.push(Buffer.from(data));
  });
  stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        walker.feed(chunk);
        decoder.push(chunk);
        cb();
      } catch (e) {
        cb(streamError(what, e));
      }
    },
    flush(cb: TransformCallback) {
      try {
        if (!walker.complete) throw corrupt(what, "it ends inside a frame");
        cb();
      } catch (e) {
        cb(streamError(what, e));
      }
    },
  });
  return { transform: stream, walker };
}

/**
 * node:zlib's decoder behind the frame walker. Backpressure runs both ways: a chunk is done when
 * libzstd has taken it, and libzstd's output waits (the decoder is paused) while this stream's
 * reader is behind, so a small input that inflates hugely is never held whole.
 */
function nativeStream(z: NativeZstd, what: string): { transform: Transform; walker: FrameWalker } {
  const walker = new FrameWalker(what);
  const inner = z.createZstdDecompress({
    chunkSize: STREAM_CHUNK,
    params: { [z.constants.ZSTD_d_windowLogMax]: WINDOW_LOG_MAX },
  });
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        walker.feed(chunk);
      } catch (e) {
        cb(streamError(what, e));
        return;
      }
      inner.write(chunk, (e) => cb(e ? streamError(what, e) : undefined));
    },
    flush(cb: TransformCallback) {
      if (!walker.complete) {
        cb(streamError(what, corrupt(what, "it ends inside a frame")));
        return;
      }
      inner.once("end", () => cb());
      inner.end();
    },
    destroy(e, cb) {
      inner.destroy();
      cb(e);
    },
  });
  inner.on("data", (data: Buffer) => {
    if (!stream.push(data)) inner.pause();
  });
  inner.on("error", (e) => stream.destroy(streamError(what, e)));
  const read = stream._read.bind(stream);
  stream._read = (size: number) => {
    inner.resume();
    read(size);
  };
  return { transform: stream, walker };
}

/**
 * The first `want` bytes of one zstd frame (an erofs pcluster, whose extent may use only part of
 * it); the frame may decode to at most `maxOutput` bytes.
 */
export function zstdDecompressPrefix(input: Buffer, want: number, maxOutput: number): Buffer {
  const what = "an erofs zstd pcluster in the image";
  const walker = new FrameWalker(what);
  walker.feed(input);
  if (walker.frames !== 1 || !walker.complete)
    throw corrupt(
      what,
      walker.frames > 1 ? "it holds more than one frame" : "the frame is cut off",
    );
  const size = walker.firstHeader?.contentSize;
  if (size !== undefined) {
    if (size < want) throw corrupt(what, `it holds ${size} bytes, not ${want}`);
    if (size > maxOutput) throw corrupt(what, `it inflates past ${maxOutput} bytes`);
    return zstdDecompressBlock(input, size).subarray(0, want);
  }
  // No size in the header: decode block by block and stop once enough came out (libzstd: decode
  // it all, at most maxOutput bytes, and keep the front).
  if (decoderKind === "native" && native) {
    let all: Buffer;
    try {
      all = native.zstdDecompressSync(input, {
        maxOutputLength: maxOutput,
        // What is kept comes out in one piece (the rest, if any, in more).
        chunkSize: Math.max(MIN_CHUNK, want),
        params: { [native.constants.ZSTD_d_windowLogMax]: WINDOW_LOG_MAX },
      });
    } catch (e) {
      throw decoderError(what, e);
    }
    if (all.length < want) throw corrupt(what, `it holds ${all.length} bytes, not ${want}`);
    return all.subarray(0, want);
  }
  const out = Buffer.allocUnsafe(want);
  let got = 0;
  const enough = new Error("enough");
  const decoder = new (fallback().Decompress)((data) => {
    const take = Math.min(data.length, want - got);
    out.set(data.subarray(0, take), got);
    got += take;
    if (got >= want) throw enough;
  });
  try {
    decoder.push(input, true);
  } catch (e) {
    if (e !== enough) throw decoderError(what, e);
  }
  if (got < want) throw corrupt(what, `it holds ${got} bytes, not ${want}`);
  return out;
}
