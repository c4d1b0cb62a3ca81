// `extctl inspect IMAGE`: everything an image says about itself, read without mounting it:
// partitions, filesystem, release file, names, verity, signer; with --tree a summary of the
// tree, with --files every file (only these two walk the tree: plain inspect reads what it prints).
import { readBounded } from "../util/bounded-read.js";
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError, errnoCode } from "../util/errors.js";
import { imageName } from "../domain/image/compat.js";
import { formatName, openImage, sidecarPaths } from "../domain/image/image.js";
import { hostArchitecture } from "../domain/image/partition-types.js";
import { findReleaseFile } from "../domain/image/release.js";
import { readDetachedSignature, readSignaturePartition } from "../domain/image/signature-info.js";
import { modeString, walkEach, type TreeEntry } from "../domain/image/tree.js";
import { readVeritySuperblock, type VeritySuperblockInfo } from "../domain/image/verity-info.js";
import type { ExtensionKind } from "../domain/store/layout.js";
import { dissectingSystemd } from "../domain/image/host.js";

export interface InspectOptions {
  /** The image file (a host path). */
  image: string;
  /** Include the full listing (with xattrs); implies the tree summary. */
  files?: boolean;
  /** Walk the whole tree for its summary (counts, sizes, top directories). */
  tree?: boolean;
  /** Which release directory to look in; default: guessed from the file name and content. */
  kind?: ExtensionKind;
  /** Extra trusted certificates (files or dirs) for checking the signature. */
  trust?: string[];
}

export interface InspectedPartition {
  index: number;
  type: string;
  typeGuid: string;
  label: string;
  uuid: string;
  offset: number;
  size: number;
  flags: string[];
  role?: "data" | "verity" | "signature";
}

export interface InspectedFile {
  path: string;
  type: TreeEntry["type"];
  mode: string;
  uid: number;
  gid: number;
  size: number;
  target?: string;
  xattrs?: Record<string, string>;
}

export interface InspectResult {
  path: string;
  size: number;
  kind: "ddi" | "single-partition" | "bare-fs";
  format: string;
  architecture?: string;
  hostArchitecture?: string;
  /** "root" or "usr": the data partition systemd mounts (DDIs). */
  designator?: "root" | "usr";
  /** Ways systemd could read the image otherwise (see DissectedImage.ambiguities). */
  ambiguities: string[];
  requiresSystemd?: { version: number; reason: string };
  sectorSize?: number;
  diskGuid?: string;
  partitions: InspectedPartition[];
  warnings: string[];
  filesystem: { type: string; compression: string; blockSize: number };
  extensionKind: ExtensionKind;
  /** The name systemd gives the image, per systemd rule set. */
  names: { systemd252: string; systemd255: string };
  release?: { path: string; match: "exact" | "fallback"; fields: Record<string, string> };
  releaseProblem?: string;
  verity?: Partial<VeritySuperblockInfo> & {
    rootHash?: string;
    rootHashSource?: string;
    source: string;
  };
  signature?: {
    source: string;
    rootHash?: string;
    certificateFingerprint?: string;
    signer?: { subject: string; issuer: string; fingerprint: string; serial: string };
    /**
     * "trusted" when the signature verifies with a certificate the node trusts; otherwise the
     * trust check's outcome (untrusted-signer, bad-signature, roothash-mismatch, ...).
     */
    status: string;
    /** The trust check's sentence: who signed, which certificate, or why not. */
    trust?: string;
  };
  /** With --tree or --files only: plain inspect does not walk the tree. */
  tree?: {
    entries: number;
    files: number;
    directories: number;
    symlinks: number;
    other: number;
    totalFileSize: number;
    topDirectories: { path: string; entries: number; size: number }[];
  };
  files?: InspectedFile[];
  bytesRead: number;
}

function flagsOf(attributes: bigint): string[] {
  const flags: string[] = [];
  if (attributes & 1n) flags.push("required");
  if (attributes & (1n << 2n)) flags.push("legacy-bios-bootable");
  if (attributes & (1n << 59n)) flags.push("grow-fs");
  if (attributes & (1n << 60n)) flags.push("read-only");
  if (attributes & (1n << 62n)) flags.push("hidden");
  if (attributes & (1n << 63n)) flags.push("no-auto");
  return flags;
}

/** The xattr bytes `inspect --files` lists at most: a floor plus a multiple of the image size. */
const XATTR_LISTING_FLOOR = 64 * 1024 * 1024;
const XATTR_LISTING_RATIO = 8;

function guessKind(fileName: string, topNames: string[]): ExtensionKind {
  if (/\.confext(\.raw)?$/.test(fileName)) return "confext";
  if (/\.sysext(\.raw)?$/.test(fileName)) return "sysext";
  return topNames.includes("etc") && !topNames.includes("usr") ? "confext" : "sysext";
}

function printable(value: Buffer): string {
  const text = value.toString("utf8");
  return /^[\x20-\x7e]*\0?$/.test(text) ? text.replace(/\0$/, "") : `0x${value.toString("hex")}`;
}

/**
 * Which top directory an entry counts towards: a file's parent up to two levels ("/usr/bin"), a
 * directory itself up to two levels; nothing for "/" and top-level directories. Index arithmetic
 * instead of split/filter/join: it runs for every entry of the image.
 */
function topKey(entryPath: string, isDir: boolean): string | undefined {
  // Paths from the readers are absolute and normalised: "/a/b/c", no trailing or double "/".
  if (entryPath.length <= 1) return undefined;
  const first = entryPath.indexOf("/", 1);
  if (first < 0) return isDir ? undefined : entryPath;
  const second = entryPath.indexOf("/", first + 1);
  if (second < 0) return isDir ? entryPath : entryPath.slice(0, first);
  return entryPath.slice(0, second);
}

/** A sidecar beside the image: untrusted, so a bounded regular file (1 MiB: a PKCS#7 fits). */
async function readOptional(p: string): Promise<Buffer | undefined> {
  try {
    return await readBounded(p, { cap: 1024 * 1024, what: "a sidecar" });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw e;
  }
}

export async function inspectImage(ctx: Context, options: InspectOptions): Promise<InspectResult> {
  const hostPath = path.resolve(options.image);
  const image = await openImage(hostPath, { systemd: await dissectingSystemd(ctx.root) });
  try {
    const d = image.dissected;
    const fileName = path.basename(hostPath);
    const root = await image.fs.root();
    const top = await image.fs.list(root);
    const kind =
      options.kind ??
      guessKind(
        fileName,
        top.map((t) => t.name),
      );
    const roles = new Map<number, "data" | "verity" | "signature">();
    if (d.data.partition) roles.set(d.data.partition.index, "data");
    if (d.verity?.partition) roles.set(d.verity.partition.index, "verity");
    if (d.signature?.partition) roles.set(d.signature.partition.index, "signature");
    const warnings = [...(d.gpt?.warnings ?? []), ...d.ambiguities];
    if (d.foreignArchitecture)
      warnings.push(
        `the image has no partitions for this host's architecture; showing ${d.architecture}`,
      );

    const result: InspectResult = {
      path: hostPath,
      size: image.file.size,
      kind: d.kind,
      format: formatName(d),
      ...(d.architecture ? { architecture: d.architecture } : {}),
      ...(d.designator ? { designator: d.designator } : {}),
      ambiguities: d.ambiguities,
      ...(d.requiresSystemd ? { requiresSystemd: d.requiresSystemd } : {}),
      ...(hostArchitecture() ? { hostArchitecture: hostArchitecture() as string } : {}),
      ...(d.gpt ? { sectorSize: d.gpt.sectorSize, diskGuid: d.gpt.diskGuid } : {}),
      partitions: d.partitions.map((p): InspectedPartition => {
        const role = roles.get(p.index);
        return {
          index: p.index,
          type: p.typeName,
          typeGuid: p.typeGuid,
          label: p.name,
          uuid: p.uniqueGuid,
          offset: p.offset,
          size: p.size,
          flags: flagsOf(p.attributes),
          ...(role ? { role } : {}),
        };
      }),
      warnings,
      filesystem: {
        type: image.fs.type,
        compression: image.fs.compression,
        blockSize: image.fs.blockSize,
      },
      extensionKind: kind,
      names: {
        systemd252: imageName(fileName, kind, 252),
        systemd255: imageName(fileName, kind, 255),
      },
      bytesRead: 0,
    };

    // The release file: try the 255+ name first, then 252's.
    let release = await findReleaseFile(image.fs, result.names.systemd255, kind);
    if (release.found !== "exact" && result.names.systemd252 !== result.names.systemd255) {
      const old = await findReleaseFile(image.fs, result.names.systemd252, kind);
      if (old.found === "exact") release = old;
    }
    if (release.found === "exact" || release.found === "fallback")
      result.release = { path: release.path, match: release.found, fields: release.fields };
    else result.releaseProblem = "reason" in release ? release.reason : "no release file";

    // Verity: the hash partition's superblock, or a sidecar .verity file for bare images.
    const sidecars = sidecarPaths(hostPath);
    if (d.verity) {
      const sb = await readVeritySuperblock(d.verity.source);
      result.verity = {
        source: `partition ${d.verity.partition?.index}`,
        ...(sb ?? {}),
        ...(d.rootHashFromUuids
          ? { rootHash: d.rootHashFromUuids, rootHashSource: "partition UUIDs" }
          : {}),
      };
    } else if (d.kind !== "ddi") {
      const roothash = (await readOptional(sidecars.roothash))?.toString("utf8").trim();
      if (roothash !== undefined)
        result.verity = {
          source: path.basename(sidecars.roothash),
          rootHash: roothash.toLowerCase(),
          rootHashSource: "sidecar file",
        };
    }
    if (d.signature) {
      const sig = await readSignaturePartition(d.signature.source);
      result.signature = {
        source: `partition ${d.signature.partition?.index}`,
        ...(sig.rootHash ? { rootHash: sig.rootHash } : {}),
        ...(sig.certificateFingerprint
          ? { certificateFingerprint: sig.certificateFingerprint }
          : {}),
        ...(sig.signer ? { signer: sig.signer } : {}),
        status: "unchecked",
      };
      if (result.verity && !result.verity.rootHash && sig.rootHash) {
        result.verity.rootHash = sig.rootHash;
        result.verity.rootHashSource = "signature partition";
      }
    } else if (d.kind !== "ddi") {
      const p7s = await readOptional(sidecars.signature);
      if (p7s) {
        const sig = await readDetachedSignature(p7s);
        result.signature = {
          source: path.basename(sidecars.signature),
          ...(sig.signer ? { signer: sig.signer } : {}),
          status: "unchecked",
        };
      }
    }

    // Tree: counts per top directory (two levels: /usr/bin), or the full listing.
    const tops = new Map<string, { entries: number; size: number }>();
    const files: InspectedFile[] = [];
    // Entries may share one stored xattr set (mksquashfs and mkfs.erofs dedupe them), so the
    // listing could hold far more xattr bytes than the image: bounded by a budget of its size.
    const xattrBudget = XATTR_LISTING_FLOOR + XATTR_LISTING_RATIO * image.file.size;
    let xattrBytes = 0;
    const listFile = async (e: TreeEntry): Promise<void> => {
      const xattrs = await image.fs.xattrs(e);
      for (const [k, v] of Object.entries(xattrs)) xattrBytes += k.length + v.length;
      if (xattrBytes > xattrBudget)
        throw new ExtctlError(
          "format",
          `the image's xattrs add up to more than ${xattrBudget} bytes by ${e.path}, more than an image of ${image.file.size} bytes plausibly holds`,
          { hint: "the image is damaged or crafted; do not use it" },
        );
      files.push({
        path: e.path,
        type: e.type,
        mode: modeString(e.type, e.mode),
        uid: e.uid,
        gid: e.gid,
        size: e.type === "dir" ? 0 : e.size,
        ...(e.target !== undefined ? { target: e.target } : {}),
        ...(Object.keys(xattrs).length > 0
          ? {
              xattrs: Object.fromEntries(Object.entries(xattrs).map(([k, v]) => [k, printable(v)])),
            }
          : {}),
      });
    };
    const t = {
      entries: 0,
      files: 0,
      directories: 0,
      symlinks: 0,
      other: 0,
      totalFileSize: 0,
      topDirectories: [] as { path: string; entries: number; size: number }[],
    };
    const walkTree = options.files === true || options.tree === true;
    if (walkTree)
      await walkEach(image.fs, root, (e) => {
        t.entries++;
        if (e.type === "file") {
          t.files++;
          t.totalFileSize += e.size;
        } else if (e.type === "dir") t.directories++;
        else if (e.type === "symlink") t.symlinks++;
        else t.other++;
        const key = topKey(e.path, e.type === "dir");
        if (key !== undefined) {
          let agg = tops.get(key);
          if (!agg) tops.set(key, (agg = { entries: 0, size: 0 }));
          agg.entries++;
          if (e.type === "file") agg.size += e.size;
        }
        if (options.files) return listFile(e);
      });
    if (result.signature)
      await checkSignature(ctx, hostPath, result.signature, options.trust ?? []);
    if (walkTree) {
      t.topDirectories = [...tops.entries()]
        .map(([p, v]) => ({ path: p, ...v }))
        .sort((a, b) => b.size - a.size || a.path.localeCompare(b.path))
        .slice(0, 10);
      result.tree = t;
    }
    if (options.files) result.files = files;
    // erofs learns its compression from the inodes it has read.
    result.filesystem.compression = image.fs.compression;
    result.bytesRead = image.file.bytesRead;
    ctx.log.debug(`read ${result.bytesRead} bytes of ${result.size}`);
    return result;
  } finally {
    await image.close();
  }
}

/** Verifies the signature (no full data read) against the node's trust store and --trust. */
async function checkSignature(
  ctx: Context,
  hostPath: string,
  signature: NonNullable<InspectResult["signature"]>,
  extra: string[],
): Promise<void> {
  const [{ loadTrustStore }, { checkImageTrust }] = await Promise.all([
    import("../domain/trust/truststore.js"),
    import("../domain/trust/image-trust.js"),
  ]);
  try {
    const trust = await checkImageTrust(ctx, hostPath, await loadTrustStore(ctx, extra));
    signature.status =
      trust.outcome === "ok" && trust.protection === "signed" ? "trusted" : trust.outcome;
    signature.trust = trust.message;
  } catch (e) {
    signature.status = "error";
    signature.trust = (e as Error).message;
  }
}
