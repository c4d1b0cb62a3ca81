// The byte source the image readers use on a file: reads aligned chunks synchronously and keeps
// a few in memory, so a superblock, its tables and a release file cost a handful of system calls.
//
// Why synchronous: a metadata read is a few KiB, usually from the page cache; a FileHandle read
// costs a thread-pool round trip and several promises each, which dominated `list` over many
// images. Why chunks: the readers ask for many small pieces (a 2-byte block header, then the
// block) that sit next to each other. Large reads (file data) bypass the chunk cache.
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import type { ByteSource, FileRegion } from "../../util/bytes.js";
import { ExtctlError } from "../../util/errors.js";

/** 64 KiB: a squashfs metadata block is at most 8 KiB; a small image's tables fit in one chunk. */
export const CHUNK_SIZE = 64 * 1024;
/** At most this many chunks are kept (4 MiB), least recently used dropped first. */
const MAX_CHUNKS = 64;

export class ReadAheadFileSource implements ByteSource {
  /** Bytes read from the file so far (inspect reports them). */
  bytesRead = 0;
  /** read(2) calls made so far. */
  reads = 0;
  private readonly chunks = new Map<number, Buffer>();
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly size: number,
    readonly path: string,
  ) {}

  /**
   * Opens a file or block device; throws the fs error (ENOENT, EACCES, ...) as is. O_NONBLOCK
   * keeps a FIFO put where an image belongs from blocking the open; it is then refused.
   */
  static open(path: string): ReadAheadFileSource {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    try {
      const st = fstatSync(fd);
      if (!st.isFile() && !st.isBlockDevice())
        throw new ExtctlError(
          "format",
          `${path} is ${st.isFIFO() ? "a FIFO" : st.isDirectory() ? "a directory" : st.isSocket() ? "a socket" : "a character device"}, not an image file or block device`,
        );
      const size = st.isBlockDevice() ? deviceSize(fd) : st.size;
      return new ReadAheadFileSource(fd, size, path);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  readAt(offset: number, length: number): Promise<Buffer> {
    return Promise.resolve(this.readAtSync(offset, length));
  }

  /** The same bytes as readAt, without a promise. */
  readAtSync(offset: number, length: number): Buffer {
    if (offset >= this.size || length <= 0 || offset < 0) return Buffer.alloc(0);
    const end = Math.min(offset + length, this.size);
    const first = Math.floor(offset / CHUNK_SIZE);
    const last = Math.floor((end - 1) / CHUNK_SIZE);
    if (first === last) {
      const chunk = this.chunk(first);
      const start = offset - first * CHUNK_SIZE;
      return chunk.subarray(start, start + (end - offset));
    }
    if (end - offset > 2 * CHUNK_SIZE) return this.readDirect(offset, end - offset);
    const out = Buffer.allocUnsafe(end - offset);
    for (let c = first; c <= last; c++) {
      const chunk = this.chunk(c);
      const from = Math.max(offset, c * CHUNK_SIZE);
      const to = Math.min(end, c * CHUNK_SIZE + chunk.length);
      chunk.copy(out, from - offset, from - c * CHUNK_SIZE, to - c * CHUNK_SIZE);
    }
    return out;
  }

  private chunk(index: number): Buffer {
    const hit = this.chunks.get(index);
    if (hit) {
      this.chunks.delete(index);
      this.chunks.set(index, hit);
      return hit;
    }
    const start = index * CHUNK_SIZE;
    const data = this.readDirect(start, Math.min(CHUNK_SIZE, this.size - start));
    this.chunks.set(index, data);
    if (this.chunks.size > MAX_CHUNKS)
      this.chunks.delete(this.chunks.keys().next().value as number);
    return data;
  }

  private readDirect(offset: number, length: number): Buffer {
    if (this.closed) throw new Error(`read from ${this.path} after close`);
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, offset + got);
      this.reads++;
      if (n === 0) break;
      got += n;
    }
    this.bytesRead += got;
    return got === length ? buf : buf.subarray(0, got);
  }

  fileRegion(offset: number, length: number): FileRegion | undefined {
    if (this.closed || offset < 0 || length < 0 || offset + length > this.size) return undefined;
    return { fd: this.fd, position: offset };
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.chunks.clear();
      closeSync(this.fd);
    }
    return Promise.resolve();
  }
}

/** Block devices report size 0 from stat: find the last readable byte instead. */
function deviceSize(fd: number): number {
  const probe = Buffer.alloc(1);
  let lo = 0;
  let hi = 2 ** 52;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (readSync(fd, probe, 0, 1, mid - 1) === 1) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
