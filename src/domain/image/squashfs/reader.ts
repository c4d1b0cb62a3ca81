// squashfs 4.0 reader over a ByteSource: superblock, metadata blocks, inodes, directories (with
// their indexes for lookups), the id, fragment and xattr tables, and streaming file data.
import { ExtctlError } from "../../../util/errors.js";
import { readExactly, type ByteSource } from "../../../util/bytes.js";
import {
  decompressorFor,
  type BlockDecompressor,
  type BlockCompression,
} from "../decompress/index.js";
import {
  checkEntryName,
  childPath,
  type EntryType,
  type ImageFilesystem,
  type TreeEntry,
} from "../tree.js";

const MAGIC = 0x73717368;
const METADATA_SIZE = 8192;
const NO_TABLE = 0xffffffffffffffffn;
const NO_FRAGMENT = 0xffffffff;
const NO_XATTR = 0xffffffff;
const COMPRESSORS: Record<number, BlockCompression> = {
  1: "gzip",
  2: "lzma",
  3: "lzo",
  4: "xz",
  5: "lz4",
  6: "zstd",
};
const XATTR_PREFIXES = ["user.", "trusted.", "security."];
/**
 * Most xattr bytes (names and values) one entry may carry. Out-of-line values can all point at
 * one stored value, so 4096 names of a few bytes each would otherwise expand a few KiB of
 * metadata into 256 MiB per entry. Linux lists at most 64 KiB of names per file.
 */
const MAX_XATTR_BYTES_PER_ENTRY = 1 << 20;
const CACHE_BLOCKS = 512;
const INODE_TYPES: Record<number, EntryType> = {
  1: "dir",
  2: "file",
  3: "symlink",
  4: "blockdev",
  5: "chardev",
  6: "fifo",
  7: "socket",
};

export interface SquashfsSuperblock {
  inodeCount: number;
  modTime: number;
  blockSize: number;
  fragmentCount: number;
  compression: BlockCompression;
  flags: number;
  idCount: number;
  rootInode: bigint;
  bytesUsed: number;
  idTableStart: number;
  xattrIdTableStart: bigint;
  inodeTableStart: number;
  directoryTableStart: number;
  fragmentTableStart: number;
}

interface InodeRef {
  /** Type as stored (1-14). */
  raw: number;
  /** For files: where data blocks start and the cursor position of the block list. */
  blocksStart?: number;
  blockList?: { block: number; offset: number };
  fragment?: number;
  fragmentOffset?: number;
  /** For directories. */
  dirBlock?: number;
  dirOffset?: number;
  dirSize?: number;
  dirIndex?: { index: number; start: number; name: string }[];
  xattr: number;
}

/** Thrown inside the synchronous inode parser when a metadata block must be loaded first. */
class MetadataMiss {
  constructor(readonly block: number) {}
}

function bad(why: string): ExtctlError {
  return new ExtctlError("format", `the squashfs image is corrupt: ${why}`, {
    hint: "the image is damaged or truncated; download or build it again",
  });
}

function toSafe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} is out of range`);
  return Number(v);
}

export async function readSquashfsSuperblock(source: ByteSource): Promise<SquashfsSuperblock> {
  const sb = await readExactly(source, 0, 96, "squashfs superblock");
  if (sb.readUInt32LE(0) !== MAGIC) {
    throw new ExtctlError("format", "not a squashfs image: the magic 'hsqs' is missing", {
      hint: "check that the file is a squashfs image",
    });
  }
  const major = sb.readUInt16LE(28);
  const minor = sb.readUInt16LE(30);
  if (major !== 4 || minor !== 0)
    throw new ExtctlError(
      "unsupported",
      `squashfs version ${major}.${minor} is not supported (only 4.0)`,
    );
  const blockSize = sb.readUInt32LE(12);
  const blockLog = sb.readUInt16LE(22);
  if (blockSize < 4096 || blockSize > 1 << 20 || 1 << blockLog !== blockSize)
    throw bad(`block size ${blockSize} is invalid`);
  const compression = COMPRESSORS[sb.readUInt16LE(20)];
  if (!compression)
    throw new ExtctlError("unsupported", `squashfs compressor ${sb.readUInt16LE(20)} is unknown`);
  const result: SquashfsSuperblock = {
    inodeCount: sb.readUInt32LE(4),
    modTime: sb.readUInt32LE(8),
    blockSize,
    fragmentCount: sb.readUInt32LE(16),
    compression,
    flags: sb.readUInt16LE(24),
    idCount: sb.readUInt16LE(26),
    rootInode: sb.readBigUInt64LE(32),
    bytesUsed: toSafe(sb.readBigUInt64LE(40), "bytes used"),
    idTableStart: toSafe(sb.readBigUInt64LE(48), "id table"),
    xattrIdTableStart: sb.readBigUInt64LE(56),
    inodeTableStart: toSafe(sb.readBigUInt64LE(64), "inode table"),
    directoryTableStart: toSafe(sb.readBigUInt64LE(72), "directory table"),
    fragmentTableStart:
      sb.readBigUInt64LE(80) === NO_TABLE ? -1 : toSafe(sb.readBigUInt64LE(80), "fragment table"),
  };
  if (result.bytesUsed > source.size)
    throw bad(`it claims ${result.bytesUsed} bytes but the image has only ${source.size}`);
  for (const [what, at] of [
    ["inode table", result.inodeTableStart],
    ["directory table", result.directoryTableStart],
    ["id table", result.idTableStart],
  ] as const) {
    if (at < 96 || at >= result.bytesUsed)
      throw bad(`the ${what} starts at ${at}, outside the filesystem`);
  }
  if (result.inodeTableStart >= result.directoryTableStart)
    throw bad("the inode table does not precede the directory table");
  return result;
}

export class SquashfsFilesystem implements ImageFilesystem {
  readonly type = "squashfs" as const;
  readonly compression: string;
  readonly blockSize: number;
  private readonly decompress: BlockDecompressor;
  private readonly cache = new Map<number, { data: Buffer; next: number }>();
  private ids: number[] = [];
  private fragmentLookup: number[] | undefined;
  private xattrTable: { start: number; count: number; lookup: number[] } | null | undefined;
  private lastFragment: { index: number; data: Buffer } | undefined;
  private rootEntry: Promise<TreeEntry> | undefined;
  /**
   * Entries found by child(), by parent inode, parent path and name: list's summary looks up
   * /usr/lib/extension-release.d/... and /usr/lib/os-release in each image, which share their
   * first steps; each of those inodes is parsed once.
   */
  private readonly entryMemo = new Map<string, TreeEntry>();

  private constructor(
    private readonly source: ByteSource,
    readonly superblock: SquashfsSuperblock,
  ) {
    this.compression = superblock.compression;
    this.blockSize = superblock.blockSize;
    this.decompress = decompressorFor(superblock.compression);
  }

  static async open(source: ByteSource): Promise<SquashfsFilesystem> {
    const fs = new SquashfsFilesystem(source, await readSquashfsSuperblock(source));
    fs.ids = await fs.readIdTable();
    return fs;
  }

  // ---- metadata ----

  private async metadataBlock(pos: number): Promise<{ data: Buffer; next: number }> {
    const hit = this.cache.get(pos);
    if (hit) {
      this.cache.delete(pos);
      this.cache.set(pos, hit);
      return hit;
    }
    if (pos < 96 || pos + 2 > this.superblock.bytesUsed)
      throw bad(`a metadata block at ${pos} lies outside the filesystem`);
    const header = (
      await readExactly(this.source, pos, 2, "squashfs metadata header")
    ).readUInt16LE(0);
    const size = header & 0x7fff;
    if (size === 0 || size > METADATA_SIZE)
      throw bad(`a metadata block at ${pos} has invalid size ${size}`);
    if (pos + 2 + size > this.superblock.bytesUsed)
      throw bad(`a metadata block at ${pos} runs past the end`);
    const raw = await readExactly(this.source, pos + 2, size, "squashfs metadata block");
    const data = header & 0x8000 ? raw : await this.decompress(raw, METADATA_SIZE);
    const block = { data, next: pos + 2 + size };
    this.cache.set(pos, block);
    if (this.cache.size > CACHE_BLOCKS) this.cache.delete(this.cache.keys().next().value as number);
    return block;
  }

  /**
   * Most metadata reads fall inside one cached block: a view of it (no copy), advancing `at`;
   * undefined otherwise (then readMetadataAcross). Callers write `cached(..) ?? (await ..)` so
   * that a hit costs no await: an inode takes up to six reads, a directory entry two.
   */
  private cached(at: { block: number; offset: number }, length: number): Buffer | undefined {
    const hit = this.cache.get(at.block);
    if (hit && at.offset + length < hit.data.length) {
      const view = hit.data.subarray(at.offset, at.offset + length);
      at.offset += length;
      return view;
    }
    return undefined;
  }

  /** Like readMetadataAcross from cached blocks only: throws MetadataMiss for one not cached. */
  private take(at: { block: number; offset: number }, length: number): Buffer {
    const hit = this.cached(at, length);
    if (hit) return hit;
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const block = this.cache.get(at.block);
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a signal caught in this file, no stack to capture
      if (!block) throw new MetadataMiss(at.block);
      const { data, next } = block;
      if (at.offset > data.length) throw bad(`a metadata offset ${at.offset} is past its block`);
      const n = Math.min(length - filled, data.length - at.offset);
      data.copy(out, filled, at.offset, at.offset + n);
      filled += n;
      at.offset += n;
      if (at.offset === data.length && filled < length) {
        at.block = next;
        at.offset = 0;
      }
    }
    if (at.offset === METADATA_SIZE) {
      const block = this.cache.get(at.block);
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a signal caught in this file, no stack to capture
      if (!block) throw new MetadataMiss(at.block);
      at.block = block.next;
      at.offset = 0;
    }
    return out;
  }

  /** Reads `length` bytes of metadata from (block, offset), following on into the next blocks. */
  private async readMetadataAcross(
    at: { block: number; offset: number },
    length: number,
  ): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { data, next } = await this.metadataBlock(at.block);
      if (at.offset > data.length) throw bad(`a metadata offset ${at.offset} is past its block`);
      const take = Math.min(length - filled, data.length - at.offset);
      data.copy(out, filled, at.offset, at.offset + take);
      filled += take;
      at.offset += take;
      if (at.offset === data.length && filled < length) {
        at.block = next;
        at.offset = 0;
      }
    }
    if (at.offset === METADATA_SIZE) {
      const { next } = await this.metadataBlock(at.block);
      at.block = next;
      at.offset = 0;
    }
    return out;
  }

  /** Reads a lookup table of u64 pointers to metadata blocks. */
  private async readLookup(start: number, entries: number, entrySize: number): Promise<number[]> {
    const blocks = Math.ceil((entries * entrySize) / METADATA_SIZE);
    if (blocks === 0) return [];
    const raw = await readExactly(this.source, start, blocks * 8, "squashfs lookup table");
    const out: number[] = [];
    for (let i = 0; i < blocks; i++)
      out.push(toSafe(raw.readBigUInt64LE(i * 8), "a table pointer"));
    return out;
  }

  private async tableEntry(lookup: number[], index: number, entrySize: number): Promise<Buffer> {
    const perBlock = METADATA_SIZE / entrySize;
    const block = lookup[Math.floor(index / perBlock)];
    if (block === undefined) throw bad(`table index ${index} is out of range`);
    const at = { block, offset: (index % perBlock) * entrySize };
    return this.cached(at, entrySize) ?? this.readMetadataAcross(at, entrySize);
  }

  private async readIdTable(): Promise<number[]> {
    const count = this.superblock.idCount;
    const lookup = await this.readLookup(this.superblock.idTableStart, count, 4);
    const ids: number[] = [];
    for (let b = 0; b < lookup.length; b++) {
      const n = Math.min(METADATA_SIZE / 4, count - b * (METADATA_SIZE / 4));
      const raw =
        this.cached({ block: lookup[b] as number, offset: 0 }, n * 4) ??
        (await this.readMetadataAcross({ block: lookup[b] as number, offset: 0 }, n * 4));
      for (let i = 0; i < n; i++) ids.push(raw.readUInt32LE(i * 4));
    }
    return ids;
  }

  private id(index: number): number {
    const v = this.ids[index];
    if (v === undefined)
      throw bad(`id index ${index} is past the id table (${this.ids.length} ids)`);
    return v;
  }

  // ---- inodes ----

  /**
   * An inode, parsed synchronously when its metadata is cached (the common case in a walk: a
   * directory's inodes sit together), else after loading what it needs. Walking thousands of
   * entries, a promise and a queue turn per inode were most of the time.
   */
  private inode(ref: number, path: string, name: string): TreeEntry | Promise<TreeEntry> {
    try {
      return this.parseInode(ref, path, name);
    } catch (e) {
      if (e instanceof MetadataMiss) return this.inodeLoading(ref, path, name, e.block);
      throw e;
    }
  }

  private async inodeLoading(
    ref: number,
    path: string,
    name: string,
    missing: number,
  ): Promise<TreeEntry> {
    // Each miss loads one more block; a real inode spans at most a few (a huge directory's
    // index), so a bound keeps a crafted one from looping.
    for (let attempt = 0; attempt < 64; attempt++) {
      await this.metadataBlock(missing);
      try {
        return this.parseInode(ref, path, name);
      } catch (e) {
        if (!(e instanceof MetadataMiss)) throw e;
        missing = e.block;
      }
    }
    throw bad(`the inode of ${path} spans more metadata blocks than a real one can`);
  }

  /** Parses an inode from cached metadata; throws MetadataMiss for a block not in the cache. */
  private parseInode(ref: number, path: string, name: string): TreeEntry {
    const blockRel = Math.floor(ref / 65536);
    const offset = ref % 65536;
    if (offset >= METADATA_SIZE) throw bad(`inode reference offset ${offset} is invalid`);
    const at = { block: this.superblock.inodeTableStart + blockRel, offset };
    if (at.block >= this.superblock.directoryTableStart)
      throw bad(`an inode reference points past the inode table`);
    const h = this.take(at, 16);
    const raw = h.readUInt16LE(0);
    const mode = h.readUInt16LE(2) & 0o7777;
    const uid = this.id(h.readUInt16LE(4));
    const gid = this.id(h.readUInt16LE(6));
    const mtime = h.readUInt32LE(8);
    const inode = h.readUInt32LE(12);

    const type = INODE_TYPES[raw > 7 ? raw - 7 : raw];
    if (!type || raw > 14) throw bad(`inode ${inode} has unknown type ${raw}`);
    const extended = raw > 7;
    const r: InodeRef = { raw, xattr: NO_XATTR };
    let size = 0;
    let nlink = 1;
    let target: string | undefined;
    let rdev: number | undefined;
    switch (type) {
      case "dir": {
        if (!extended) {
          const b = this.take(at, 16);
          r.dirBlock = b.readUInt32LE(0);
          nlink = b.readUInt32LE(4);
          r.dirSize = b.readUInt16LE(8);
          r.dirOffset = b.readUInt16LE(10);
        } else {
          const b = this.take(at, 24);
          nlink = b.readUInt32LE(0);
          r.dirSize = b.readUInt32LE(4);
          r.dirBlock = b.readUInt32LE(8);
          const indexCount = b.readUInt16LE(16);
          r.dirOffset = b.readUInt16LE(18);
          r.xattr = b.readUInt32LE(20);
          r.dirIndex = [];
          for (let i = 0; i < indexCount; i++) {
            const e = this.take(at, 12);
            const nameSize = e.readUInt32LE(8) + 1;
            if (nameSize > 256)
              throw bad(`a directory index name of ${nameSize} bytes is too long`);
            const n = this.take(at, nameSize).toString("latin1");
            r.dirIndex.push({ index: e.readUInt32LE(0), start: e.readUInt32LE(4), name: n });
          }
        }
        if (r.dirOffset >= METADATA_SIZE) throw bad(`directory offset ${r.dirOffset} is invalid`);
        // The stored size counts 3 bytes for "." and ".."; report what ls shows for squashfs.
        size = r.dirSize;
        break;
      }
      case "file": {
        let fileSize: number;
        if (!extended) {
          const b = this.take(at, 16);
          r.blocksStart = b.readUInt32LE(0);
          r.fragment = b.readUInt32LE(4);
          r.fragmentOffset = b.readUInt32LE(8);
          fileSize = b.readUInt32LE(12);
        } else {
          const b = this.take(at, 40);
          r.blocksStart = toSafe(b.readBigUInt64LE(0), "a file's block start");
          fileSize = toSafe(b.readBigUInt64LE(8), "a file size");
          nlink = b.readUInt32LE(24);
          r.fragment = b.readUInt32LE(28);
          r.fragmentOffset = b.readUInt32LE(32);
          r.xattr = b.readUInt32LE(36);
        }
        r.blockList = { block: at.block, offset: at.offset };
        size = fileSize;
        break;
      }
      case "symlink": {
        const b = this.take(at, 8);
        nlink = b.readUInt32LE(0);
        const len = b.readUInt32LE(4);
        if (len > 4096) throw bad(`a symlink target of ${len} bytes is too long`);
        target = this.take(at, len).toString("utf8");
        size = len;
        if (extended) r.xattr = this.take(at, 4).readUInt32LE(0);
        break;
      }
      case "blockdev":
      case "chardev": {
        const b = this.take(at, extended ? 12 : 8);
        nlink = b.readUInt32LE(0);
        rdev = b.readUInt32LE(4);
        if (extended) r.xattr = b.readUInt32LE(8);
        break;
      }
      default: {
        const b = this.take(at, extended ? 8 : 4);
        nlink = b.readUInt32LE(0);
        if (extended) r.xattr = b.readUInt32LE(4);
      }
    }
    // One literal with every field, optional ones added after: object spreads here were the
    // single largest cost of walking a tree.
    const entry: TreeEntry = {
      path,
      name,
      type,
      mode,
      uid,
      gid,
      size,
      mtime,
      nlink,
      inode,
      key: ref,
      ref: r,
    };
    if (target !== undefined) entry.target = target;
    if (rdev !== undefined) entry.rdev = rdev;
    return entry;
  }

  root(): Promise<TreeEntry> {
    const ref = toSafe(this.superblock.rootInode, "the root inode reference");
    this.rootEntry ??= Promise.resolve(this.inode(ref, "/", "")).then((root) => {
      if (root.type !== "dir") throw bad("the root inode is not a directory");
      return root;
    });
    return this.rootEntry;
  }

  // ---- directories ----

  /**
   * The (name, inode reference) pairs of a directory, from its start or from an index position,
   * stopping after the first name for which `stop` says so. An array, not an async generator: a
   * generator step costs promises per entry, and the entries are usually in one cached block.
   */
  private async entries(
    dir: TreeEntry,
    startAt?: { block: number; offset: number; consumed: number },
    stop?: (name: string) => boolean,
  ): Promise<{ name: string; ref: number; inode: number }[]> {
    const out: { name: string; ref: number; inode: number }[] = [];
    const r = dir.ref as InodeRef;
    if (r.dirBlock === undefined || r.dirSize === undefined || r.dirOffset === undefined)
      return out;
    if (r.dirSize < 3) throw bad(`directory ${dir.path} has invalid size ${r.dirSize}`);
    const at = startAt ?? {
      block: this.superblock.directoryTableStart + r.dirBlock,
      offset: r.dirOffset,
      consumed: 3,
    };
    let consumed = at.consumed;
    const cursor = { block: at.block, offset: at.offset };
    while (consumed < r.dirSize) {
      const h = this.cached(cursor, 12) ?? (await this.readMetadataAcross(cursor, 12));
      consumed += 12;
      const count = h.readUInt32LE(0) + 1;
      if (count > 256) throw bad(`directory ${dir.path} has a header with ${count} entries`);
      const start = h.readUInt32LE(4);
      const baseInode = h.readUInt32LE(8);
      for (let i = 0; i < count; i++) {
        if (consumed >= r.dirSize) throw bad(`directory ${dir.path} runs past its size`);
        const e = this.cached(cursor, 8) ?? (await this.readMetadataAcross(cursor, 8));
        const nameSize = e.readUInt16LE(6) + 1;
        const name = (
          this.cached(cursor, nameSize) ?? (await this.readMetadataAcross(cursor, nameSize))
        ).toString("utf8");
        consumed += 8 + nameSize;
        checkEntryName(name, dir.path);
        out.push({
          name,
          // block * 2^16 + offset as a plain number (< 2^48): no BigInt per entry.
          ref: start * 65536 + e.readUInt16LE(0),
          inode: baseInode + e.readInt16LE(2),
        });
        if (stop?.(name)) return out;
      }
    }
    return out;
  }

  /** The entry for `name` in `dir`, parsed once per filesystem for lookups (see entryMemo). */
  private async entryOf(dir: TreeEntry, e: { name: string; ref: number }): Promise<TreeEntry> {
    const key = `${dir.key}\0${dir.path}\0${e.name}`;
    const hit = this.entryMemo.get(key);
    if (hit) return hit;
    const entry = await this.inode(e.ref, childPath(dir, e.name), e.name);
    // Bounded: lookups of many different paths must not keep every entry.
    if (this.entryMemo.size >= 4096) this.entryMemo.clear();
    this.entryMemo.set(key, entry);
    return entry;
  }

  async list(dir: TreeEntry): Promise<TreeEntry[]> {
    if (dir.type !== "dir") throw new ExtctlError("internal", `${dir.path} is not a directory`);
    const out: TreeEntry[] = [];
    for (const e of await this.entries(dir)) {
      const entry = this.inode(e.ref, childPath(dir, e.name), e.name);
      out.push(entry instanceof Promise ? await entry : entry);
    }
    return out;
  }

  /** Finds one name in a directory, starting from the directory index when there is one. */
  async child(dir: TreeEntry, name: string): Promise<TreeEntry | undefined> {
    const r = dir.ref as InodeRef;
    let start: { block: number; offset: number; consumed: number } | undefined;
    const wanted = Buffer.from(name, "utf8");
    for (const idx of r.dirIndex ?? []) {
      if (Buffer.compare(Buffer.from(idx.name, "latin1"), wanted) > 0) break;
      start = {
        block: this.superblock.directoryTableStart + idx.start,
        offset: ((r.dirOffset ?? 0) + idx.index) % METADATA_SIZE,
        consumed: idx.index + 3,
      };
    }
    // Names are sorted: stop at the first one not before the wanted one.
    const seen = await this.entries(
      dir,
      start,
      (n) => Buffer.compare(Buffer.from(n, "utf8"), wanted) >= 0,
    );
    const last = seen[seen.length - 1];
    return last?.name === name ? this.entryOf(dir, last) : undefined;
  }

  // ---- xattrs ----

  private async loadXattrTable(): Promise<{
    start: number;
    count: number;
    lookup: number[];
  } | null> {
    if (this.xattrTable !== undefined) return this.xattrTable;
    const at = this.superblock.xattrIdTableStart;
    if (at === NO_TABLE) return (this.xattrTable = null);
    const pos = toSafe(at, "xattr table");
    const h = await readExactly(this.source, pos, 16, "squashfs xattr id table");
    const count = h.readUInt32LE(8);
    const lookup = await this.readLookup(pos + 16, count, 16);
    this.xattrTable = { start: toSafe(h.readBigUInt64LE(0), "xattr table"), count, lookup };
    return this.xattrTable;
  }

  async xattrs(entry: TreeEntry): Promise<Record<string, Buffer>> {
    const index = (entry.ref as InodeRef).xattr;
    if (index === NO_XATTR) return {};
    const table = await this.loadXattrTable();
    if (!table || index >= table.count)
      throw bad(`xattr index ${index} of ${entry.path} is out of range`);
    const e = await this.tableEntry(table.lookup, index, 16);
    const ref = e.readBigUInt64LE(0);
    const count = e.readUInt32LE(8);
    if (count > 4096) throw bad(`${entry.path} claims ${count} xattrs`);
    const at = { block: table.start + Number(ref >> 16n), offset: Number(ref & 0xffffn) };
    const out: Record<string, Buffer> = {};
    let total = 0;
    const charge = (n: number): void => {
      total += n;
      if (total > MAX_XATTR_BYTES_PER_ENTRY)
        throw bad(`the xattrs of ${entry.path} exceed ${MAX_XATTR_BYTES_PER_ENTRY} bytes`);
    };
    for (let i = 0; i < count; i++) {
      const kh = this.cached(at, 4) ?? (await this.readMetadataAcross(at, 4));
      const type = kh.readUInt16LE(0);
      const nameSize = kh.readUInt16LE(2);
      if (nameSize > 255) throw bad(`an xattr name of ${nameSize} bytes is too long`);
      const name = (
        this.cached(at, nameSize) ?? (await this.readMetadataAcross(at, nameSize))
      ).toString("utf8");
      const prefix = XATTR_PREFIXES[type & 0xff];
      if (prefix === undefined) throw bad(`xattr type ${type} is unknown`);
      const vsize = (this.cached(at, 4) ?? (await this.readMetadataAcross(at, 4))).readUInt32LE(0);
      let value: Buffer;
      if (type & 0x100) {
        if (vsize !== 8) throw bad("an out-of-line xattr reference has the wrong size");
        const vref = (this.cached(at, 8) ?? (await this.readMetadataAcross(at, 8))).readBigUInt64LE(
          0,
        );
        const vat = { block: table.start + Number(vref >> 16n), offset: Number(vref & 0xffffn) };
        const realSize = (
          this.cached(vat, 4) ?? (await this.readMetadataAcross(vat, 4))
        ).readUInt32LE(0);
        if (realSize > 65536) throw bad(`an xattr value of ${realSize} bytes is too large`);
        charge(nameSize + realSize);
        value = Buffer.from(
          this.cached(vat, realSize) ?? (await this.readMetadataAcross(vat, realSize)),
        );
      } else {
        if (vsize > 65536) throw bad(`an xattr value of ${vsize} bytes is too large`);
        charge(nameSize + vsize);
        value = Buffer.from(this.cached(at, vsize) ?? (await this.readMetadataAcross(at, vsize)));
      }
      out[prefix + name] = value;
    }
    return out;
  }

  // ---- file data ----

  private async fragmentBlock(index: number): Promise<Buffer> {
    if (this.lastFragment?.index === index) return this.lastFragment.data;
    if (index >= this.superblock.fragmentCount || this.superblock.fragmentTableStart < 0)
      throw bad(`fragment ${index} is out of range`);
    this.fragmentLookup ??= await this.readLookup(
      this.superblock.fragmentTableStart,
      this.superblock.fragmentCount,
      16,
    );
    const e = await this.tableEntry(this.fragmentLookup, index, 16);
    const start = toSafe(e.readBigUInt64LE(0), "fragment start");
    const word = e.readUInt32LE(8);
    const data = await this.dataBlock(start, word, this.blockSize);
    this.lastFragment = { index, data };
    return data;
  }

  private async dataBlock(pos: number, word: number, maxOutput: number): Promise<Buffer> {
    const size = word & 0xffffff;
    if (size > this.blockSize || pos + size > this.superblock.bytesUsed)
      throw bad(`a data block at ${pos} of ${size} bytes lies outside the filesystem`);
    const raw = await readExactly(this.source, pos, size, "squashfs data block");
    if (word & 0x1000000) return raw;
    return this.decompress(raw, maxOutput);
  }

  async *read(entry: TreeEntry): AsyncGenerator<Buffer> {
    if (entry.type !== "file")
      throw new ExtctlError("internal", `${entry.path} is not a regular file`);
    const r = entry.ref as InodeRef;
    const fileSize = entry.size;
    const bs = this.blockSize;
    const hasFragment = r.fragment !== undefined && r.fragment !== NO_FRAGMENT;
    const blocks = hasFragment ? Math.floor(fileSize / bs) : Math.ceil(fileSize / bs);
    const list = { ...(r.blockList as { block: number; offset: number }) };
    let pos = r.blocksStart as number;
    let done = 0;
    for (let i = 0; i < blocks; i++) {
      const word = (this.cached(list, 4) ?? (await this.readMetadataAcross(list, 4))).readUInt32LE(
        0,
      );
      const want = Math.min(bs, fileSize - done);
      if ((word & 0xffffff) === 0) {
        yield Buffer.alloc(want);
      } else {
        const data = await this.dataBlock(pos, word, bs);
        if (data.length !== want)
          throw bad(`block ${i} of ${entry.path} holds ${data.length} bytes, not ${want}`);
        pos += word & 0xffffff;
        yield data;
      }
      done += want;
    }
    if (hasFragment && done < fileSize) {
      const frag = await this.fragmentBlock(r.fragment as number);
      const off = r.fragmentOffset as number;
      const tail = fileSize - done;
      if (off + tail > frag.length)
        throw bad(`the tail of ${entry.path} lies past its fragment block`);
      yield frag.subarray(off, off + tail);
    } else if (done !== fileSize) {
      throw bad(`${entry.path} has fewer blocks than its size needs`);
    }
  }
}

export function openSquashfs(source: ByteSource): Promise<SquashfsFilesystem> {
  return SquashfsFilesystem.open(source);
}
