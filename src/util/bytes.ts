// Random-access byte sources for the format readers: a file, a slice of one (a partition) or a
// buffer. Readers never see a path and never load a whole image.
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { ExtctlError } from "./errors.js";

export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Reads up to `length` bytes at `offset`; shorter only at the end of the source. */
  readAt(offset: number, length: number): Promise<Buffer>;
  /**
   * Where bytes [offset, offset+length) lie in an open file, for readers that read them
   * themselves (the verity hashing threads share the process's descriptors); undefined when
   * the source is not a file. The descriptor stays the source's: valid until it is closed.
   */
  fileRegion?(offset: number, length: number): FileRegion | undefined;
}

/** Bytes of an open file: its descriptor and the position they start at. */
export interface FileRegion {
  fd: number;
  position: number;
}

/** Reads exactly `length` bytes or fails with a format error naming `what`. */
export async function readExactly(
  source: ByteSource,
  offset: number,
  length: number,
  what: string,
): Promise<Buffer> {
  if (offset < 0 || length < 0 || offset + length > source.size) {
    throw new ExtctlError(
      "format",
      `${what} lies outside the image (offset ${offset}, length ${length}, image size ${source.size})`,
    );
  }
  const buf = await source.readAt(offset, length);
  if (buf.length !== length) {
    throw new ExtctlError(
      "format",
      `${what} is truncated (wanted ${length} bytes, got ${buf.length})`,
    );
  }
  return buf;
}

export class BufferSource implements ByteSource {
  constructor(private readonly buffer: Buffer) {}
  get size(): number {
    return this.buffer.length;
  }
  async readAt(offset: number, length: number): Promise<Buffer> {
    const start = Math.max(0, Math.min(offset, this.buffer.length));
    return this.buffer.subarray(start, Math.min(start + length, this.buffer.length));
  }
}

/** A window [offset, offset+size) of another source, e.g. one GPT partition. */
export class SliceSource implements ByteSource {
  constructor(
    private readonly parent: ByteSource,
    readonly offset: number,
    readonly size: number,
  ) {
    if (offset < 0 || size < 0 || offset + size > parent.size) {
      throw new ExtctlError(
        "format",
        `slice ${offset}+${size} lies outside a source of ${parent.size} bytes`,
      );
    }
  }
  async readAt(offset: number, length: number): Promise<Buffer> {
    if (offset >= this.size || length <= 0) return Buffer.alloc(0);
    return this.parent.readAt(this.offset + offset, Math.min(length, this.size - offset));
  }

  fileRegion(offset: number, length: number): FileRegion | undefined {
    if (offset < 0 || length < 0 || offset + length > this.size) return undefined;
    return this.parent.fileRegion?.(this.offset + offset, length);
  }
}

/** A file opened for random reads; counts the bytes it reads (inspect reports them). */
export class FileSource implements ByteSource {
  bytesRead = 0;
  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    readonly path: string,
  ) {}

  static async open(path: string): Promise<FileSource> {
    // O_NONBLOCK: a FIFO where a file belongs must not hang the open; it is refused below.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    try {
      const st = await handle.stat();
      if (!st.isFile() && !st.isBlockDevice())
        throw new ExtctlError(
          "format",
          `${path} is ${st.isFIFO() ? "a FIFO" : st.isDirectory() ? "a directory" : st.isSocket() ? "a socket" : "a character device"}, not a regular file or block device`,
        );
      let size = st.size;
      if (st.isBlockDevice()) {
        // Block devices report size 0 from stat; ask the end of the device instead.
        const probe = Buffer.alloc(1);
        let lo = 0;
        let hi = 2 ** 52;
        while (lo < hi) {
          const mid = Math.floor((lo + hi + 1) / 2);
          const { bytesRead } = await handle.read(probe, 0, 1, mid - 1);
          if (bytesRead === 1) lo = mid;
          else hi = mid - 1;
        }
        size = lo;
      }
      return new FileSource(handle, size, path);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async readAt(offset: number, length: number): Promise<Buffer> {
    if (offset >= this.size || length <= 0) return Buffer.alloc(0);
    const want = Math.min(length, this.size - offset);
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.handle.read(buf, got, want - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.bytesRead += got;
    return got === want ? buf : buf.subarray(0, got);
  }

  fileRegion(offset: number, length: number): FileRegion | undefined {
    if (offset < 0 || length < 0 || offset + length > this.size) return undefined;
    return { fd: this.handle.fd, position: offset };
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** A page of zeros to compare against (allZero). */
const ZEROS = Buffer.alloc(64 * 1024);

/**
 * Whether every byte of `view` is 0, by memcmp against zeros: the NUL padding of a 16 KiB
 * signature partition, checked with a per-byte callback, was a visible part of boot's CPU.
 */
export function allZero(view: Uint8Array): boolean {
  for (let at = 0; at < view.length; at += ZEROS.length) {
    const part = view.subarray(at, Math.min(view.length, at + ZEROS.length));
    if (ZEROS.compare(part, 0, part.length, 0, part.length) !== 0) return false;
  }
  return true;
}
