// Versions of an extension installed by name from a catalog (issue 14). Each version is a file
// in <store>/.versions/NAME/; the store's NAME.raw is a hard link to the current one. Profile
// links keep pointing at ../NAME.raw, so immucore, kairos-agent and systemd see one stable
// regular file per extension, and switching every profile at once is one rename.
//
//   <store>/NAME.raw                      the current version (a hard link)
//   <store>/active/NAME.raw -> ../NAME.raw
//   <store>/.versions/NAME/record.json    what was asked for, from where, every version kept
//   <store>/.versions/NAME/VERSION-DIGEST.raw
//
// Which version is current is read off the inodes, never from the record, so a crash between
// the switch and the record write cannot make the two disagree. A record is believed only when
// root owns it and its directory and no one else can write them (util/owned-state.ts); each
// version carries the SHA-256 it was fetched with, checked again before it becomes current.
import { constants, createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { link, lstat, open, readdir, rename, rm, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { fsyncDir, tempPathBeside, writeFileAtomic } from "../../util/atomic.js";
import { READ_CAPS } from "../../util/bounded-read.js";
import { ExtctlError, errnoCode, fsError } from "../../util/errors.js";
import { StderrLogger } from "../../util/log.js";
import { makeDirInRoot, readOwnedInRoot } from "../../util/owned-state.js";
import { IMAGE_SUFFIX, checkSafeName, isImageName } from "./names.js";
import { VERSIONS_DIR, type ExtensionStore } from "./store.js";

export { VERSIONS_DIR };

const RECORD_FILE = "record.json";
const RECORD_FORMAT = 1;

export interface VersionEntry {
  version: string;
  /** File name in the extension's versions directory. */
  file: string;
  /** Where it came from: oci://host/repo@sha256:… (or the URI of an adopted image). */
  reference: string;
  /** The catalog that chose it, when one did. */
  catalog?: string;
  installedAt: string;
  /**
   * SHA-256 (hex) of the file as it was fetched (or adopted); absent in records an extctl before
   * 2026-12 wrote, and then recorded the first time the version is admitted again.
   */
  sha256?: string;
}

export interface VersionRecord {
  format: typeof RECORD_FORMAT;
  /** The catalog name of the extension. */
  name: string;
  /** What the user asked for: undefined (latest), a tag (a pin) or a semver constraint. */
  requested?: string;
  pinned: boolean;
  /** Catalog URLs given at install; empty: the node's defaults. */
  catalogs: string[];
  versions: VersionEntry[];
  /** The version this one was switched from last, kept by pruning (it may still be merged). */
  previous?: string;
  /** The version extctl last saw merged (upgrade/rollback --now), kept by pruning. */
  merged?: string;
  /** Versions rolled back from: upgrade does not take them again unless asked by name. */
  rolledBack: string[];
  /**
   * The health check `upgrade --now` runs after the new version merged (an argv, run without a
   * shell; domain/lifecycle/health-check.ts), remembered from --health-check or an apply file.
   */
  healthCheck?: string[];
  /** Boot assessment (domain/lifecycle/boot-assessment.ts): the version on trial, if any. */
  pending?: PendingVersion;
  /** The version last blessed (current when boot-complete.target was reached). */
  blessed?: string;
  /** The last boots that found a pending version out of tries and linked its predecessor. */
  bootFallbacks?: BootFallback[];
  /** Every such boot, counted (the list keeps only the last few). */
  bootFallbackCount?: number;
}

/** A version on trial: what it replaced, and the boots it may still try. */
export interface PendingVersion {
  version: string;
  file: string;
  previous: string;
  previousFile: string;
  triesLeft: number;
  /** The tries it started with. */
  tries: number;
  since: string;
}

/** A boot that found a pending version out of tries and linked its predecessor. */
export interface BootFallback {
  at: string;
  from: string;
  to: string;
  reason: string;
}

/** The store file name of the extension `name` installed by name. */
export function storeFileName(name: string): string {
  return `${name}${IMAGE_SUFFIX}`;
}

/** The file a version is kept in: its version and the start of its digest, so a moving tag
 * (`stable`) never overwrites the file that may be current. */
export function versionFileName(version: string, reference: string): string {
  const digest = /sha256:([0-9a-f]{12})/.exec(reference)?.[1] ?? "local";
  const file = `${version}-${digest}${IMAGE_SUFFIX}`;
  checkSafeName(file, `version ${JSON.stringify(version)}`, {
    hint: "the catalog's tag is not a usable file name",
  });
  return file;
}

export class VersionedStore {
  constructor(
    readonly store: ExtensionStore,
    /** Where a record that is not believed is reported (it is then ignored). */
    private readonly warn: (message: string) => void = (m) => new StderrLogger().warn(m),
  ) {}

  /** Node path of the versions directory of `name`. */
  dir(name: string): string {
    return `${this.store.layout.store}/${VERSIONS_DIR}/${name}`;
  }

  /** Node path of a version's file. */
  filePath(name: string, entry: VersionEntry): string {
    return `${this.dir(name)}/${entry.file}`;
  }

  /** Names of the extensions that have a versions directory. */
  async names(): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(
        await this.store.root.readPath(`${this.store.layout.store}/${VERSIONS_DIR}`),
        {
          withFileTypes: true,
        },
      );
    } catch (e) {
      if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return [];
      throw fsError(e, `read ${this.store.layout.store}/${VERSIONS_DIR}`);
    }
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith("."))
      .map((e) => e.name)
      .sort();
  }

  async read(name: string): Promise<VersionRecord | undefined> {
    const nodePath = `${this.dir(name)}/${RECORD_FILE}`;
    const raw = await readOwnedInRoot(this.store.root, nodePath, {
      cap: READ_CAPS.config,
      what: "a version record",
      warn: this.warn,
    });
    if (raw === undefined) return undefined;
    let record: VersionRecord;
    try {
      record = JSON.parse(raw.toString("utf8")) as VersionRecord;
    } catch {
      throw new ExtctlError("config", `${nodePath} is not valid JSON`, {
        hint: "restore it or remove the directory and install the extension again",
      });
    }
    if (record.format !== RECORD_FORMAT || record.name !== name || !Array.isArray(record.versions))
      throw new ExtctlError("config", `${nodePath} is not a version record extctl can read`);
    record.rolledBack ??= [];
    return record;
  }

  async write(record: VersionRecord): Promise<void> {
    const dir = await this.ensureDir(record.name);
    await writeFileAtomic(path.join(dir, RECORD_FILE), JSON.stringify(record, null, 2) + "\n");
  }

  /** Host path of the versions directory of `name`, created when missing. */
  async ensureDir(name: string): Promise<string> {
    checkSafeName(name, "the extension name", { exitCode: 2 });
    return makeDirInRoot(this.store.root, this.dir(name));
  }

  /** Whether a version's file is there (a complete file: only renames put it there). */
  async has(name: string, entry: VersionEntry): Promise<boolean> {
    try {
      return (await lstat(this.store.root.path(this.filePath(name, entry)))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * The version NAME.raw is now (same inode), undefined when NAME.raw is missing or is none of
   * the recorded versions (replaced by hand or by an install from a URI).
   */
  async current(record: VersionRecord): Promise<VersionEntry | undefined> {
    const main = await statOrUndefined(
      this.store.root.path(this.store.imagePath(storeFileName(record.name))),
    );
    if (!main) return undefined;
    for (const entry of record.versions) {
      const st = await statOrUndefined(this.store.root.path(this.filePath(record.name, entry)));
      if (st && st.ino === main.ino && st.dev === main.dev) return entry;
    }
    return undefined;
  }

  /**
   * Makes `entry` the current version: a hard link beside NAME.raw renamed over it, so every
   * profile link switches in one step and a crash leaves the old or the new, never neither.
   */
  async switchTo(name: string, entry: VersionEntry): Promise<void> {
    const source = await this.store.writeHost(this.filePath(name, entry));
    const target = await this.store.writeHost(this.store.imagePath(storeFileName(name)));
    const temp = tempPathBeside(target, "switch");
    try {
      await link(source, temp);
      await rename(temp, target);
    } catch (e) {
      await unlink(temp).catch(() => {});
      throw fsError(
        e,
        `switch ${this.store.imagePath(storeFileName(name))} to ${name} ${entry.version}`,
      );
    }
    await fsyncDir(path.dirname(target));
  }

  /**
   * Takes in a file already in the store as a version (an image installed from a URI before the
   * extension was installed by name), so that a rollback can return to it.
   */
  async adopt(name: string, version: string, reference: string): Promise<VersionEntry> {
    const dir = await this.ensureDir(name);
    const entry: VersionEntry = {
      version,
      file: versionFileName(version, reference),
      reference,
      installedAt: new Date().toISOString(),
    };
    const source = await this.store.writeHost(this.store.imagePath(storeFileName(name)));
    entry.sha256 = await fileSha256(source);
    const temp = tempPathBeside(path.join(dir, entry.file), "adopt");
    try {
      await link(source, temp);
      await rename(temp, path.join(dir, entry.file));
    } catch (e) {
      await unlink(temp).catch(() => {});
      throw fsError(e, `keep the installed ${storeFileName(name)} as a version`);
    }
    return entry;
  }

  /**
   * Deletes the oldest versions beyond `keep`, never the current one, the previous one, the one
   * last seen merged, or one in `protect`. Returns the versions deleted.
   */
  async prune(
    record: VersionRecord,
    keep: number,
    protect: readonly string[] = [],
  ): Promise<string[]> {
    const current = await this.current(record);
    const kept = new Set(
      [
        current?.version,
        record.previous,
        record.merged,
        record.pending?.previous,
        ...protect,
      ].filter((v): v is string => v !== undefined),
    );
    // Newest first (install order); the protected ones count toward `keep`.
    const byAge = [...record.versions].sort((a, b) => b.installedAt.localeCompare(a.installedAt));
    let room = Math.max(keep, 1) - byAge.filter((e) => kept.has(e.version)).length;
    const removed: string[] = [];
    for (const entry of byAge) {
      if (kept.has(entry.version)) continue;
      if (room > 0) {
        room -= 1;
        continue;
      }
      await rm(await this.store.writeHost(this.filePath(record.name, entry)), { force: true });
      removed.push(entry.version);
    }
    if (removed.length > 0) {
      record.versions = record.versions.filter((e) => !removed.includes(e.version));
      await this.write(record);
    }
    return removed;
  }

  /** Deletes the versions directory of `name` (after its NAME.raw was removed). */
  async removeAll(name: string): Promise<void> {
    try {
      await rm(await this.store.writeHost(this.dir(name)), { recursive: true, force: true });
    } catch (e) {
      throw fsError(e, `delete ${this.dir(name)}`);
    }
  }

  /** Drops record entries whose file is gone (a killed install); returns the record. */
  async reconcile(record: VersionRecord): Promise<VersionRecord> {
    const present: VersionEntry[] = [];
    for (const entry of record.versions)
      if (await this.has(record.name, entry)) present.push(entry);
    record.versions = present;
    return record;
  }

  /** Image files in a versions dir that no record entry names (left by a killed run). */
  async strays(record: VersionRecord): Promise<string[]> {
    const dir = this.store.root.path(this.dir(record.name));
    const names = await readdir(dir).catch(() => [] as string[]);
    const known = new Set(record.versions.map((e) => e.file));
    return names.filter((n) => isImageName(n) && !known.has(n));
  }
}

/**
 * SHA-256 (hex) of a file's bytes, streamed (never read whole): opened without following a
 * symlink, and only a regular file.
 */
export async function fileSha256(file: string): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await handle.stat()).isFile())
      throw new ExtctlError("format", `${file} is not a regular file`);
    const hash = createHash("sha256");
    for await (const chunk of createReadStream("", {
      fd: handle,
      autoClose: false,
      highWaterMark: 1024 * 1024,
    }))
      hash.update(chunk as Buffer);
    return hash.digest("hex");
  } finally {
    await handle.close();
  }
}

async function statOrUndefined(file: string) {
  try {
    return await stat(file);
  } catch {
    return undefined;
  }
}
