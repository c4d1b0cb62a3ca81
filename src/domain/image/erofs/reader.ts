// erofs reader over a ByteSource: superblock, compact and extended inodes, flat / inline /
// chunk-based data, directories, inline and shared xattrs, and compressed files (lz4, lzma,
// deflate, zstd; tail-packed, fragment and deduplicated extents).
import { ExtctlError } from "../../../util/errors.js";
import { readExactly, type ByteSource } from "../../../util/bytes.js";
import { algorithmNames, decodePcluster } from "./pcluster.js";
import {
  MODE_TYPE_BITS,
  checkEntryName,
  childPath,
  type EntryType,
  type ImageFilesystem,
  type TreeEntry,
} from "../tree.js";

const MAGIC = 0xe0f5e1e2;
const SB_OFFSET = 1024;
const NULL_ADDR = 0xffffffff;
const FEATURE_ZERO_PADDING = 0x1;
const FEATURE_CHUNKED = 0x4;
const FEATURE_COMPR_CFGS = 0x2;
const FEATURE_FRAGMENTS = 0x20;

const LAYOUT_FLAT_PLAIN = 0;
const LAYOUT_COMPRESSED_FULL = 1;
const LAYOUT_FLAT_INLINE = 2;
const LAYOUT_COMPRESSED_COMPACT = 3;
const LAYOUT_CHUNK_BASED = 4;

const ADVISE_COMPACTED_2B = 0x1;
const ADVISE_BIG_PCLUSTER_1 = 0x2;
const ADVISE_BIG_PCLUSTER_2 = 0x4;
const ADVISE_INLINE_PCLUSTER = 0x8;
const ADVISE_INTERLACED = 0x10;
const ADVISE_FRAGMENT = 0x20;
const CBLKCNT = 1 << 11;

const LC_HEAD1 = 1;
const LC_NONHEAD = 2;
const LC_HEAD2 = 3;

const XATTR_PREFIXES: Record<number, string> = {
  1: "user.",
  2: "system.posix_acl_access",
  3: "system.posix_acl_default",
  4: "trusted.",
  6: "security.",
};
const FILE_TYPES: Record<number, EntryType> = {
  1: "file",
  2: "dir",
  3: "chardev",
  4: "blockdev",
  5: "fifo",
  6: "socket",
  7: "symlink",
};
const MAX_DIR_BYTES = 64 * 1024 * 1024;
/** File type by the S_IFMT bits of a mode (a lookup runs for every inode). */
const TYPE_OF_MODE = new Map<number, EntryType>(
  (Object.entries(MODE_TYPE_BITS) as [EntryType, number][]).map(([type, bits]) => [bits, type]),
);
const MAX_EXTENTS = 1 << 22;

export interface ErofsSuperblock {
  blockSize: number;
  blockBits: number;
  rootNid: number;
  inodeCount: number;
  buildTime: number;
  blocks: number;
  metaBlockAddr: number;
  xattrBlockAddr: number;
  uuid: string;
  volumeName: string;
  featureCompat: number;
  featureIncompat: number;
  /** Bit mask of compression algorithms in use (bit 0 lz4, 1 lzma, 2 deflate, 3 zstd). */
  compressionAlgorithms: number;
  /** The inode holding fragments (tails or whole files packed together), when there is one. */
  packedNid?: number;
}

interface InodeInfo {
  nid: number;
  layout: number;
  /** Byte offset of the inode. */
  at: number;
  /** Size of inode plus xattr area: inline data and indexes start here. */
  bodyEnd: number;
  xattrStart: number;
  xattrSize: number;
  rawU: number;
}

function bad(why: string): ExtctlError {
  return new ExtctlError("format", `the erofs image is corrupt: ${why}`, {
    hint: "the image is damaged or truncated; download or build it again",
  });
}

export async function readErofsSuperblock(source: ByteSource): Promise<ErofsSuperblock> {
  const sb = await readExactly(source, SB_OFFSET, 128, "erofs superblock");
  if (sb.readUInt32LE(0) !== MAGIC)
    throw new ExtctlError(
      "format",
      "not an erofs image: the magic 0xE0F5E1E2 is missing at offset 1024",
    );
  const blockBits = sb[12] as number;
  if (blockBits < 9 || blockBits > 16) throw bad(`block size 2^${blockBits} is invalid`);
  const incompat = sb.readUInt32LE(80);
  // 0x20 is fragments and dedupe (one bit for both).
  const known = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | FEATURE_FRAGMENTS;
  if (incompat & ~known)
    throw new ExtctlError(
      "unsupported",
      `the erofs image uses features extctl cannot read (incompat 0x${incompat.toString(16)})`,
    );
  // As for squashfs's bytes_used: a superblock claiming more than the file holds is an image
  // cut short, and nothing past its end can be read.
  const blocks = sb.readUInt32LE(36);
  if (blocks * (1 << blockBits) > source.size)
    throw bad(
      `it claims ${blocks} blocks of ${1 << blockBits} bytes but the image has only ${source.size} bytes`,
    );
  const hex = sb.subarray(48, 64).toString("hex");
  return {
    blockSize: 1 << blockBits,
    blockBits,
    rootNid: sb.readUInt16LE(14),
    inodeCount: Number(sb.readBigUInt64LE(16)),
    buildTime: Number(sb.readBigUInt64LE(24)),
    blocks,
    metaBlockAddr: sb.readUInt32LE(40),
    xattrBlockAddr: sb.readUInt32LE(44),
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    volumeName: sb.subarray(64, 80).toString("latin1").replace(/\0.*$/s, ""),
    featureCompat: sb.readUInt32LE(8),
    featureIncompat: incompat,
    compressionAlgorithms: incompat & FEATURE_COMPR_CFGS ? sb.readUInt16LE(84) : 1,
    ...(incompat & FEATURE_FRAGMENTS ? packedNidOf(sb) : {}),
  };
}

function packedNidOf(sb: Buffer): { packedNid?: number } {
  const nid = sb.readBigUInt64LE(96);
  // 0 means none: the packed inode is never the first inode slot (the root comes first).
  if (nid === 0n) return {};
  if (nid > BigInt(Number.MAX_SAFE_INTEGER)) throw bad("the packed inode number is impossible");
  return { packedNid: Number(nid) };
}

/** Where an extent's stored bytes are. */
type ExtentSource =
  /** A pcluster of whole blocks at `pos`. */
  | "blocks"
  /** ztailpacking: the last pcluster, stored inline right after the compression index. */
  | "inline"
  /** fragments: the tail (or the whole file), at `pos` inside the packed inode's data. */
  | "fragment";

interface Extent {
  /** Logical start and end in the file. */
  start: number;
  end: number;
  /** Physical byte offset and length of the pcluster. */
  pos: number;
  length: number;
  compressed: boolean;
  /** erofs algorithm number of a compressed extent (0 lz4, 1 lzma, 2 deflate, 3 zstd). */
  algorithm: number;
  /** Bytes to rotate for interlaced plain clusters. */
  shift: number;
  source: ExtentSource;
}

/** A decoded extent kept for the next read of the packed inode (fragments share pclusters). */
interface DecodedExtent {
  start: number;
  data: Buffer;
}
const MAX_CACHED_EXTENT = 4 * 1024 * 1024;

export class ErofsFilesystem implements ImageFilesystem {
  readonly type = "erofs" as const;
  readonly blockSize: number;
  private readonly declaredCompression: string;
  /** Set once an inode with a compressed layout has been seen (old images declare nothing). */
  private sawCompressed = false;
  private readonly cache = new Map<
    number,
    InodeInfo & { entry: Omit<TreeEntry, "path" | "name"> }
  >();

  private constructor(
    private readonly source: ByteSource,
    readonly superblock: ErofsSuperblock,
  ) {
    this.blockSize = superblock.blockSize;
    const algs = algorithmNames(superblock.compressionAlgorithms);
    this.declaredCompression = superblock.featureIncompat & 0x3 ? algs.join(",") || "lz4" : "none";
  }

  /**
   * The compression in use. Images without compression configs do not declare it, so this
   * says "lz4" only after a compressed inode was read (inspect asks after walking the tree).
   */
  get compression(): string {
    return this.declaredCompression === "none" && this.sawCompressed
      ? "lz4"
      : this.declaredCompression;
  }

  static async open(source: ByteSource): Promise<ErofsFilesystem> {
    return new ErofsFilesystem(source, await readErofsSuperblock(source));
  }

  private bytes(offset: number, length: number, what: string): Promise<Buffer> {
    return readExactly(this.source, offset, length, `erofs ${what}`);
  }

  private async inode(
    nid: number,
  ): Promise<InodeInfo & { entry: Omit<TreeEntry, "path" | "name"> }> {
    const hit = this.cache.get(nid);
    if (hit) return hit;
    const at = this.superblock.metaBlockAddr * this.blockSize + nid * 32;
    if (at + 32 > this.source.size) throw bad(`inode ${nid} lies past the end of the image`);
    const head = await this.bytes(at, 32, "inode");
    const format = head.readUInt16LE(0);
    const extended = (format & 1) === 1;
    const layout = (format >> 1) & 7;
    const b = extended ? await this.bytes(at, 64, "inode") : head;
    const icount = b.readUInt16LE(2);
    const modeRaw = b.readUInt16LE(4);
    const isize = extended ? 64 : 32;
    const xattrSize = icount === 0 ? 0 : 12 + (icount - 1) * 4;
    const typeBits = modeRaw & 0o170000;
    const type = TYPE_OF_MODE.get(typeBits);
    if (!type) throw bad(`inode ${nid} has an unknown file type`);
    const size = extended ? b.readBigUInt64LE(8) : BigInt(b.readUInt32LE(8));
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`inode ${nid} has an impossible size`);
    const rawU = b.readUInt32LE(16);
    const info = {
      nid,
      layout,
      at,
      bodyEnd: at + isize + xattrSize,
      xattrStart: at + isize,
      xattrSize,
      rawU,
      entry: {
        type,
        mode: modeRaw & 0o7777,
        uid: extended ? b.readUInt32LE(24) : b.readUInt16LE(24),
        gid: extended ? b.readUInt32LE(28) : b.readUInt16LE(26),
        size: Number(size),
        mtime: extended ? Number(b.readBigUInt64LE(32)) : this.superblock.buildTime,
        nlink: extended ? b.readUInt32LE(44) : b.readUInt16LE(6),
        inode: b.readUInt32LE(20),
        key: nid,
        ref: nid,
        rdev: type === "chardev" || type === "blockdev" ? rawU : undefined,
      },
    };
    if (layout > LAYOUT_CHUNK_BASED) throw bad(`inode ${nid} has unknown data layout ${layout}`);
    if (layout === LAYOUT_COMPRESSED_FULL || layout === LAYOUT_COMPRESSED_COMPACT)
      this.sawCompressed = true;
    if (this.cache.size > 4096) this.cache.clear();
    this.cache.set(nid, info);
    return info;
  }

  private async entry(nid: number, path: string, name: string): Promise<TreeEntry> {
    const info = await this.inode(nid);
    const e = info.entry;
    // A literal, not a spread of info.entry: this runs for every entry of a walk.
    const entry: TreeEntry = {
      path,
      name,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      mtime: e.mtime,
      nlink: e.nlink,
      inode: e.inode,
      key: e.key,
      ref: nid,
    };
    if (e.rdev !== undefined) entry.rdev = e.rdev;
    if (entry.type === "symlink") {
      if (entry.size > 4096) throw bad(`the symlink ${path} has a ${entry.size}-byte target`);
      const parts: Buffer[] = [];
      for await (const c of this.data(info, entry.size)) parts.push(c);
      entry.target = Buffer.concat(parts).toString("utf8");
    }
    return entry;
  }

  async root(): Promise<TreeEntry> {
    const root = await this.entry(this.superblock.rootNid, "/", "");
    if (root.type !== "dir") throw bad("the root inode is not a directory");
    return root;
  }

  private async dirents(
    dir: TreeEntry,
  ): Promise<{ name: string; nid: number; fileType: number }[]> {
    const info = await this.inode(dir.ref as number);
    if (dir.size > MAX_DIR_BYTES) throw bad(`directory ${dir.path} is ${dir.size} bytes`);
    const out: { name: string; nid: number; fileType: number }[] = [];
    let offset = 0;
    for await (const chunk of this.data(info, dir.size)) {
      // Directory data comes in whole blocks (the last may be shorter); data() yields per block.
      for (let base = 0; base < chunk.length; base += this.blockSize) {
        const block = chunk.subarray(base, Math.min(chunk.length, base + this.blockSize));
        if (block.length < 12) throw bad(`directory ${dir.path} has a truncated block`);
        const firstNameOff = block.readUInt16LE(8);
        const count = Math.floor(firstNameOff / 12);
        if (count === 0 || firstNameOff % 12 !== 0 || firstNameOff > block.length)
          throw bad(`directory ${dir.path} has a bad block at ${offset + base}`);
        for (let i = 0; i < count; i++) {
          const nid = Number(block.readBigUInt64LE(i * 12));
          const nameOff = block.readUInt16LE(i * 12 + 8);
          const fileType = block[i * 12 + 10] as number;
          const nameEnd = i + 1 < count ? block.readUInt16LE((i + 1) * 12 + 8) : block.length;
          if (nameOff < firstNameOff || nameEnd > block.length || nameEnd < nameOff)
            throw bad(`directory ${dir.path} has a name outside its block`);
          let raw = block.subarray(nameOff, nameEnd);
          if (i + 1 === count) {
            const nul = raw.indexOf(0);
            if (nul >= 0) raw = raw.subarray(0, nul);
          }
          const name = raw.toString("utf8");
          if (name === "." || name === "..") continue;
          checkEntryName(name, dir.path);
          out.push({ name, nid, fileType });
        }
      }
      offset += chunk.length;
    }
    return out;
  }

  async list(dir: TreeEntry): Promise<TreeEntry[]> {
    if (dir.type !== "dir") throw new ExtctlError("internal", `${dir.path} is not a directory`);
    const out: TreeEntry[] = [];
    for (const d of await this.dirents(dir)) {
      const e = await this.entry(d.nid, childPath(dir, d.name), d.name);
      if (FILE_TYPES[d.fileType] !== undefined && FILE_TYPES[d.fileType] !== e.type)
        throw bad(`the directory entry ${e.path} disagrees with its inode about the file type`);
      out.push(e);
    }
    return out;
  }

  async xattrs(entry: TreeEntry): Promise<Record<string, Buffer>> {
    const info = await this.inode(entry.ref as number);
    if (info.xattrSize === 0) return {};
    const area = await this.bytes(info.xattrStart, info.xattrSize, "xattr area");
    const shared = area[4] as number;
    const out: Record<string, Buffer> = {};
    let pos = 12 + shared * 4;
    if (pos > area.length) throw bad(`the xattrs of ${entry.path} overflow their area`);
    for (let i = 0; i < shared; i++) {
      const id = area.readUInt32LE(12 + i * 4);
      const at = this.superblock.xattrBlockAddr * this.blockSize + id * 4;
      const h = await this.bytes(at, 4, "shared xattr");
      const body = await this.bytes(at + 4, (h[0] as number) + h.readUInt16LE(2), "shared xattr");
      this.addXattr(out, h, body);
    }
    while (pos + 4 <= area.length) {
      const h = area.subarray(pos, pos + 4);
      const len = 4 + (h[0] as number) + h.readUInt16LE(2);
      if (pos + len > area.length) throw bad(`an xattr of ${entry.path} overflows its area`);
      this.addXattr(out, h, area.subarray(pos + 4, pos + len));
      pos += (len + 3) & ~3;
    }
    return out;
  }

  private addXattr(out: Record<string, Buffer>, h: Buffer, body: Buffer): void {
    const nameLen = h[0] as number;
    const prefix = XATTR_PREFIXES[h[1] as number] ?? "";
    out[prefix + body.toString("utf8", 0, nameLen)] = Buffer.from(body.subarray(nameLen));
  }

  async *read(entry: TreeEntry): AsyncGenerator<Buffer> {
    if (entry.type !== "file")
      throw new ExtctlError("internal", `${entry.path} is not a regular file`);
    yield* this.data(await this.inode(entry.ref as number), entry.size);
  }

  /** Streams the data of an inode in any layout, at most one block or pcluster per chunk. */
  private async *data(info: InodeInfo, size: number): AsyncGenerator<Buffer> {
    const bs = this.blockSize;
    switch (info.layout) {
      case LAYOUT_FLAT_PLAIN:
      case LAYOUT_FLAT_INLINE: {
        const inline = info.layout === LAYOUT_FLAT_INLINE;
        const fullBlocks = inline ? Math.floor(size / bs) : Math.ceil(size / bs);
        const start = info.rawU * bs;
        if (fullBlocks > 0 && start + Math.min(size, fullBlocks * bs) > this.source.size)
          throw bad(`the data of inode ${info.nid} lies past the end of the image`);
        let done = 0;
        for (let i = 0; i < fullBlocks; i++) {
          const n = Math.min(bs, size - done);
          yield await this.bytes(start + i * bs, n, "data block");
          done += n;
        }
        if (inline && done < size) {
          const tail = size - done;
          if ((info.bodyEnd % bs) + tail > bs)
            throw bad(`the inline data of inode ${info.nid} crosses a block boundary`);
          yield await this.bytes(info.bodyEnd, tail, "inline data");
        }
        return;
      }
      case LAYOUT_CHUNK_BASED:
        yield* this.chunked(info, size);
        return;
      case LAYOUT_COMPRESSED_FULL:
      case LAYOUT_COMPRESSED_COMPACT:
        yield* this.compressed(info, size);
        return;
      default:
        throw bad(`inode ${info.nid} has unknown data layout ${info.layout}`);
    }
  }

  private async *chunked(info: InodeInfo, size: number): AsyncGenerator<Buffer> {
    if (!(this.superblock.featureIncompat & FEATURE_CHUNKED))
      throw bad(`inode ${info.nid} is chunk-based but the feature is off`);
    const format = info.rawU & 0xffff;
    const chunkBits = this.superblock.blockBits + (format & 0x1f);
    if (chunkBits > 40) throw bad(`inode ${info.nid} has chunks of 2^${chunkBits} bytes`);
    const chunkSize = 2 ** chunkBits;
    const indexes = (format & 0x20) !== 0;
    const entrySize = indexes ? 8 : 4;
    const chunks = Math.ceil(size / chunkSize);
    if (chunks > MAX_EXTENTS) throw bad(`inode ${info.nid} has ${chunks} chunks`);
    const tableAt = indexes ? Math.ceil(info.bodyEnd / 8) * 8 : info.bodyEnd;
    const bs = this.blockSize;
    let done = 0;
    for (let c = 0; c < chunks; c++) {
      const e = await this.bytes(tableAt + c * entrySize, entrySize, "chunk index");
      const blk = indexes ? e.readUInt32LE(4) : e.readUInt32LE(0);
      const chunkLen = Math.min(chunkSize, size - done);
      for (let off = 0; off < chunkLen; off += bs) {
        const n = Math.min(bs, chunkLen - off);
        if (blk === NULL_ADDR) yield Buffer.alloc(n);
        else yield await this.bytes(blk * bs + off, n, "chunk data");
      }
      done += chunkLen;
    }
  }

  /** Decodes the lcluster index of a compressed inode into extents. */
  private async extents(info: InodeInfo, size: number): Promise<Extent[]> {
    const bs = this.blockSize;
    const mapAt = Math.ceil(info.bodyEnd / 8) * 8;
    const map = await this.bytes(mapAt, 8, "compression map header");
    // The top bit of the 8-byte header: the whole file sits in the packed inode (-E all-fragments).
    if ((map[7] as number) & 0x80) {
      const off = map.readBigUInt64LE(0) ^ (1n << 63n);
      if (off > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`inode ${info.nid} has a bad fragment`);
      return [wholeFragment(Number(off), size)];
    }
    const advise = map.readUInt16LE(4);
    const algorithms = map[6] as number;
    const lclusterBits = this.superblock.blockBits + ((map[7] as number) & 7);
    const fragment = (advise & ADVISE_FRAGMENT) !== 0;
    const inlineSize = !fragment && advise & ADVISE_INLINE_PCLUSTER ? map.readUInt16LE(2) : 0;
    let fragmentOff = fragment ? map.readUInt32LE(0) : 0;
    if (advise & ADVISE_INLINE_PCLUSTER && !fragment && inlineSize === 0)
      throw bad(`inode ${info.nid} has an empty tail-packed pcluster`);
    const lcsize = 2 ** lclusterBits;
    const total = Math.ceil(size / lcsize);
    if (total > MAX_EXTENTS) throw bad(`inode ${info.nid} has ${total} logical clusters`);
    const big1 = (advise & ADVISE_BIG_PCLUSTER_1) !== 0;
    const big2 = (advise & ADVISE_BIG_PCLUSTER_2) !== 0;
    const ebase = mapAt + 8;

    // One record per lcluster: type and low bits (clusterofs or delta), plus blkaddr for heads.
    const types = new Uint8Array(total);
    const lows = new Uint32Array(total);
    const pblks = new Float64Array(total);
    /** Where the index after the last lcluster's begins: a tail-packed pcluster sits there. */
    let tailAt: number;
    if (info.layout === LAYOUT_COMPRESSED_FULL) {
      // The full index keeps 8 reserved bytes after the map header.
      const raw = await this.bytes(ebase + 8, total * 8, "compression index");
      for (let i = 0; i < total; i++) {
        types[i] = raw.readUInt16LE(i * 8) & 3;
        lows[i] =
          types[i] === LC_NONHEAD ? raw.readUInt16LE(i * 8 + 4) : raw.readUInt16LE(i * 8 + 2);
        pblks[i] = raw.readUInt32LE(i * 8 + 4);
      }
      tailAt = ebase + 8 + total * 8;
    } else {
      if (big1 !== big2)
        throw bad(`inode ${info.nid} mixes big and small pclusters in a compact index`);
      tailAt = await this.compactIndex(info, ebase, total, lclusterBits, advise, {
        types,
        lows,
        pblks,
      });
    }

    const extents: Extent[] = [];
    let lastHead = -1;
    for (let i = 0; i < total; i++) {
      const type = types[i] as number;
      if (type === LC_NONHEAD) {
        if (i === 0) throw bad(`inode ${info.nid} starts with a non-head cluster`);
        continue;
      }
      const clusterofs = lows[i] as number;
      if (clusterofs >= lcsize) throw bad(`inode ${info.nid} has cluster offset ${clusterofs}`);
      const start = i * lcsize + clusterofs;
      if (start >= size) continue;
      lastHead = i;
      let blocks = 1;
      const big = type === LC_HEAD1 ? big1 : big2;
      const next = i + 1 < total ? (types[i + 1] as number) : -1;
      if (big && next === LC_NONHEAD && (lows[i + 1] as number) & CBLKCNT)
        blocks = (lows[i + 1] as number) & ~CBLKCNT;
      const prev = extents[extents.length - 1];
      if (prev) prev.end = start;
      extents.push({
        start,
        end: size,
        pos: (pblks[i] as number) * bs,
        length: blocks * bs,
        compressed: type === LC_HEAD1 || type === LC_HEAD2,
        algorithm: type === LC_HEAD2 ? algorithms >> 4 : algorithms & 15,
        shift: advise & ADVISE_INTERLACED ? clusterofs : 0,
        source: "blocks",
      });
    }
    const tail = extents[extents.length - 1];
    if (tail && inlineSize > 0) {
      if ((tailAt % bs) + inlineSize > bs)
        throw bad(`the tail-packed pcluster of inode ${info.nid} crosses a block boundary`);
      tail.source = "inline";
      tail.pos = tailAt;
      tail.length = inlineSize;
      tail.shift = 0;
    } else if (tail && fragment) {
      // A tail whose head is the first lcluster means the whole file is the fragment.
      if (lastHead === 0) return [wholeFragment(fragmentOff, size)];
      // Full indexes keep the fragment offset's high half in the tail head's block address.
      if (info.layout === LAYOUT_COMPRESSED_FULL)
        fragmentOff += (pblks[lastHead] as number) * 2 ** 32;
      tail.source = "fragment";
      tail.pos = fragmentOff;
      tail.length = size - tail.start;
    }
    if (extents.length === 0 || (extents[0] as Extent).start !== 0)
      throw bad(`inode ${info.nid} does not map the start of its data`);
    // Checked only now: a tail that is inline or a fragment may record 0 blocks (mkfs.erofs 1.8).
    for (const x of extents)
      if (x.source === "blocks" && (x.length === 0 || x.length > 256 * bs))
        throw bad(`inode ${info.nid} has a pcluster of ${x.length / bs} blocks`);
    return extents;
  }

  /**
   * Decodes a compact index (4-byte packs of 2 lclusters, optionally 32-byte packs of 16) into
   * the arrays, and returns where the pack after the last lcluster's begins.
   */
  private async compactIndex(
    info: InodeInfo,
    ebase: number,
    total: number,
    lclusterBits: number,
    advise: number,
    out: { types: Uint8Array; lows: Uint32Array; pblks: Float64Array },
  ): Promise<number> {
    const big = (advise & ADVISE_BIG_PCLUSTER_1) !== 0;
    let initial4b = (32 - (ebase % 32)) / 4;
    if (initial4b === 8) initial4b = 0;
    initial4b = Math.min(initial4b, total);
    const compact2b =
      advise & ADVISE_COMPACTED_2B && lclusterBits === 12
        ? Math.floor((total - initial4b) / 16) * 16
        : 0;
    const lobits = Math.max(lclusterBits, 12);
    const groups: { count: number; shift: number }[] = [
      { count: initial4b, shift: 2 },
      { count: compact2b, shift: 1 },
      { count: total - initial4b - compact2b, shift: 2 },
    ];
    let pos = ebase;
    let lcn = 0;
    let end = ebase;
    for (const g of groups) {
      if (g.count === 0) continue;
      const bytes = g.count << g.shift;
      const vcnt = g.shift === 2 ? 2 : 16;
      const packBytes = vcnt << g.shift;
      // A last, partly used pack still carries its block address in its final 4 bytes.
      const packs = Math.ceil(g.count / vcnt);
      const raw = await this.bytes(pos, packs * packBytes, "compact compression index");
      end = pos + packs * packBytes;

      // Only the last group in use may end in a partly used pack.
      const later = groups.slice(groups.indexOf(g) + 1).some((h) => h.count > 0);
      if (g.count % vcnt !== 0 && later)
        throw bad(`inode ${info.nid} has a misaligned compact index`);
      const encodebits = ((packBytes - 4) * 8) / vcnt;
      for (let p = 0; p * packBytes < raw.length; p++) {
        const pack = raw.subarray(p * packBytes, (p + 1) * packBytes);
        if (pack.length < packBytes) throw bad(`inode ${info.nid} has a truncated compact index`);
        const base = pack.readUInt32LE(packBytes - 4);
        const decode = (i: number) => {
          const bit = encodebits * i;
          const v = pack.readUInt32LE(Math.min(bit >> 3, packBytes - 4)) >>> (bit & 7);
          return { lo: v & ((1 << lobits) - 1), type: (v >>> lobits) & 3 };
        };
        const slots = Array.from({ length: vcnt }, (_, i) => decode(i));
        // Without big pclusters the pack's address is one block before its first pcluster.
        let nblk = big ? 0 : 1;
        for (let i = 0; i < vcnt && lcn < total; i++, lcn++) {
          const s = slots[i] as { lo: number; type: number };
          out.types[lcn] = s.type;
          out.lows[lcn] = s.lo;
          if (s.type === LC_NONHEAD) {
            if (big && s.lo & CBLKCNT) nblk += s.lo & ~CBLKCNT;
            continue;
          }
          out.pblks[lcn] = base + nblk;
          const next = slots[i + 1];
          if (!(big && next && next.type === LC_NONHEAD && next.lo & CBLKCNT)) nblk += 1;
        }
      }
      pos += bytes;
    }
    return end;
  }

  private async *compressed(info: InodeInfo, size: number): AsyncGenerator<Buffer> {
    if (size === 0) return;
    for (const x of await this.extents(info, size)) yield* this.extentData(info, x);
  }

  /** The decoded bytes of one extent, wherever it is stored. */
  private async *extentData(info: InodeInfo, x: Extent): AsyncGenerator<Buffer> {
    const want = x.end - x.start;
    if (want <= 0) throw bad(`inode ${info.nid} has overlapping extents`);
    if (x.source === "fragment") {
      yield* this.packedRange(info, x.pos, want);
      return;
    }
    if (x.pos + x.length > this.source.size)
      throw bad(`a pcluster of inode ${info.nid} lies past the end of the image`);
    const raw = await this.bytes(x.pos, x.length, "pcluster");
    if (!x.compressed) {
      if (want > raw.length) throw bad(`a plain cluster of inode ${info.nid} is too short`);
      if (x.shift) {
        const rotated = Buffer.concat([raw.subarray(x.shift), raw.subarray(0, x.shift)]);
        yield rotated.subarray(0, want);
      } else yield raw.subarray(0, want);
      return;
    }
    let from = 0;
    if (this.superblock.featureIncompat & FEATURE_ZERO_PADDING) {
      while (from < raw.length && raw[from] === 0) from++;
      if (from === raw.length) throw bad(`a pcluster of inode ${info.nid} is all zeros`);
    }
    yield* decodePcluster(x.algorithm, raw.subarray(from), want);
  }

  private packed?: { info: InodeInfo; size: number; extents?: Extent[] };
  private lastDecoded?: DecodedExtent;

  /** Bytes [offset, offset + length) of the packed inode, where fragments live. */
  private async *packedRange(
    owner: InodeInfo,
    offset: number,
    length: number,
  ): AsyncGenerator<Buffer> {
    const nid = this.superblock.packedNid;
    if (nid === undefined)
      throw bad(`inode ${owner.nid} has a fragment but there is no packed inode`);
    if (owner.nid === nid) throw bad("the packed inode refers to a fragment of itself");
    if (!this.packed) {
      const info = await this.inode(nid);
      if (info.entry.type !== "file") throw bad("the packed inode is not a regular file");
      this.packed = { info, size: info.entry.size };
    }
    const p = this.packed;
    if (offset + length > p.size)
      throw bad(`a fragment of inode ${owner.nid} lies past the end of the packed inode`);
    const layout = p.info.layout;
    if (layout === LAYOUT_FLAT_PLAIN) {
      // Uncompressed and contiguous: read the range directly, a block or so at a time.
      const base = p.info.rawU * this.blockSize;
      for (let at = 0; at < length; at += this.blockSize)
        yield await this.bytes(
          base + offset + at,
          Math.min(this.blockSize, length - at),
          "fragment",
        );
      return;
    }
    if (layout !== LAYOUT_COMPRESSED_FULL && layout !== LAYOUT_COMPRESSED_COMPACT) {
      // Any other layout: stream from the start and skip (only tiny packed inodes look like this).
      yield* sliceStream(this.data(p.info, p.size), offset, length);
      return;
    }
    p.extents ??= await this.extents(p.info, p.size);
    const end = offset + length;
    for (const x of overlapping(p.extents, offset, end)) {
      if (x.source === "fragment") throw bad("the packed inode refers to a fragment");
      const from = Math.max(offset, x.start) - x.start;
      const to = Math.min(end, x.end) - x.start;
      const cached = this.lastDecoded;
      if (cached && cached.start === x.start) {
        yield cached.data.subarray(from, to);
        continue;
      }
      if (x.end - x.start <= MAX_CACHED_EXTENT) {
        const data = Buffer.concat(await collect(this.extentData(p.info, x)));
        this.lastDecoded = { start: x.start, data };
        yield data.subarray(from, to);
      } else yield* sliceStream(this.extentData(p.info, x), from, to - from);
    }
  }
}

function wholeFragment(offset: number, size: number): Extent {
  return {
    start: 0,
    end: size,
    pos: offset,
    length: size,
    compressed: false,
    algorithm: 0,
    shift: 0,
    source: "fragment",
  };
}

/** The extents (sorted, adjoining) that overlap [from, to), found by binary search. */
function* overlapping(extents: Extent[], from: number, to: number): Generator<Extent> {
  let lo = 0;
  let hi = extents.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((extents[mid] as Extent).start <= from) lo = mid;
    else hi = mid - 1;
  }
  for (let i = lo; i < extents.length; i++) {
    const x = extents[i] as Extent;
    if (x.start >= to) return;
    if (x.end > from) yield x;
  }
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

/** Bytes [offset, offset + length) of a stream of chunks. */
async function* sliceStream(
  chunks: AsyncIterable<Buffer>,
  offset: number,
  length: number,
): AsyncGenerator<Buffer> {
  let pos = 0;
  const end = offset + length;
  for await (const c of chunks) {
    const from = Math.max(offset, pos) - pos;
    const to = Math.min(end, pos + c.length) - pos;
    if (to > from) yield c.subarray(from, to);
    pos += c.length;
    if (pos >= end) return;
  }
  if (pos < end) throw bad("a fragment lies past the end of the packed inode's data");
}

export function openErofs(source: ByteSource): Promise<ErofsFilesystem> {
  return ErofsFilesystem.open(source);
}
