// The store on a node: downloaded images, the profile dirs of symlinks that say which boot
// profile loads which image, and the runtime dir systemd merges from. Only this module knows
// how the two-step link chain is laid out (/run/extensions/N -> <store>/<profile>/N -> <store>/N).
import { access, constants, lstat, readdir, readlink, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { ExtctlError, fsError, errnoCode } from "../../util/errors.js";
import type { Root } from "../../util/root.js";
import {
  fsyncDir,
  processAlive,
  sweepTempFiles,
  symlinkAtomic,
  tempOwnerPid,
} from "../../util/atomic.js";
import { LAYOUTS, PROFILES, profileDir, type ExtensionKind, type Profile } from "./layout.js";
import { isImageName } from "./names.js";
import { makeDir } from "../../util/owned-state.js";

/** Where versions of extensions installed by name live (store/versions.ts owns the layout). */
export const VERSIONS_DIR = ".versions";

export interface LinkInfo {
  name: string;
  /** Node path the link points at. */
  target: string;
  /** Whether the chain ends at an existing file inside the root. */
  resolves: boolean;
}

export class ExtensionStore {
  readonly layout;

  constructor(
    readonly root: Root,
    readonly kind: ExtensionKind,
  ) {
    this.layout = LAYOUTS[kind];
  }

  /** Node path of an image in the store. */
  imagePath(name: string): string {
    return `${this.layout.store}/${name}`;
  }

  profileLinkPath(profile: Profile, name: string): string {
    return `${profileDir(this.kind, profile)}/${name}`;
  }

  runtimeLinkPath(name: string): string {
    return `${this.layout.runtime}/${name}`;
  }

  /** Host path of a node path, as a plain join (for reading images systemd itself reads). */
  host(nodePath: string): string {
    return this.root.path(nodePath);
  }

  /**
   * Host path at which to change `nodePath` (see Root.writePath): a directory on the way that
   * leads outside the root is an error naming it. `entry` leaves the last component unresolved.
   */
  writeHost(nodePath: string, leaf: "entry" | "follow" = "entry"): Promise<string> {
    return this.root.writePath(nodePath, { leaf });
  }

  /** Host path of an entry to look at (lstat, readlink): its directory resolved inside the root. */
  private async entryHost(nodePath: string): Promise<string> {
    if (this.root.isHostRoot) return this.root.path(nodePath);
    const dir = await this.root.readPath(path.posix.dirname(nodePath));
    return path.join(dir, path.posix.basename(nodePath));
  }

  /**
   * Creates the store dir (and its parents) 0755 whatever the umask; fails clearly when a file is
   * in the way, or when a directory on the way could be written by others than root (makeDir).
   */
  async ensureStore(): Promise<string> {
    const dir = await this.writeHost(this.layout.store, "follow");
    const st = await stat(dir).catch(() => undefined);
    if (st === undefined || st.isDirectory()) {
      await makeDir(dir, {
        within: this.root.dir,
        what: `the store directory ${this.layout.store}`,
      });
    } else {
      throw new ExtctlError(
        "not-a-directory",
        `${this.layout.store} should be the store directory, but a file is there`,
        {
          hint: "move that file away; extctl does not delete what it did not make",
        },
      );
    }
    return dir;
  }

  /**
   * Fails before any change when the store cannot be written (read-only filesystem, no
   * permission), so that a command never stops half-way through its links.
   */
  async assertWritable(): Promise<void> {
    const dirs = [this.layout.store, ...(await this.existingProfileDirs())];
    for (const dir of dirs) {
      try {
        await access(await this.writeHost(dir, "follow"), constants.W_OK);
      } catch (e) {
        if (errnoCode(e) === "ENOENT") continue;
        throw fsError(e, `change ${dir}`);
      }
    }
  }

  private async existingProfileDirs(): Promise<string[]> {
    const result: string[] = [];
    for (const profile of PROFILES) {
      if (await this.exists(profileDir(this.kind, profile)))
        result.push(profileDir(this.kind, profile));
    }
    return result;
  }

  /** Creates a profile or runtime dir 0755 (see makeDir: one others can write is refused). */
  async ensureDir(nodePath: string): Promise<void> {
    await makeDir(await this.writeHost(nodePath, "follow"), {
      within: this.root.dir,
      what: nodePath,
    });
  }

  /** Image file names in the store: regular files or symlinks whose name ends in .raw. */
  async images(): Promise<string[]> {
    return this.rawEntries(this.layout.store);
  }

  /**
   * The host path to read image `name` at: the store entry resolved inside the root, and a
   * regular file. Anything else (a FIFO, a device, a dangling link, a link leading out of the
   * root) is an ExtctlError saying what it is: opening it could hang or read outside the root.
   */
  async imageFile(name: string): Promise<string> {
    const nodePath = this.imagePath(name);
    const file = await this.root.readPath(nodePath);
    let st;
    try {
      st = await (this.root.isHostRoot ? stat(file) : lstat(file));
    } catch (e) {
      if (errnoCode(e) !== "ENOENT" && errnoCode(e) !== "ENOTDIR")
        throw fsError(e, `read ${nodePath}`);
      const target = await readlink(await this.entryHost(nodePath)).catch(() => undefined);
      throw new ExtctlError(
        "not-found",
        target === undefined
          ? `${nodePath} does not exist`
          : `${nodePath} is a symlink to ${target}, which leads to no file inside the root`,
      );
    }
    if (!st.isFile()) {
      const kind = st.isFIFO()
        ? "a FIFO"
        : st.isSocket()
          ? "a socket"
          : st.isCharacterDevice() || st.isBlockDevice()
            ? "a device"
            : st.isDirectory()
              ? "a directory"
              : "not a regular file";
      throw new ExtctlError(
        "format",
        `${nodePath}${file === this.host(nodePath) ? "" : ` (${file})`} is ${kind}, not an image file`,
      );
    }
    return file;
  }

  /**
   * Every *.raw entry of the store, split into images that can be read (with their host path)
   * and entries that cannot (see imageFile), so listings skip them with a warning, never hang.
   */
  async readableImages(): Promise<{
    images: { name: string; file: string }[];
    skipped: { name: string; reason: string }[];
    /** The store dir's host path and every name in it (sidecars too), when it could be read. */
    listing?: { dir: string; names: ReadonlySet<string> };
  }> {
    let entries;
    let dir;
    try {
      dir = await this.root.readPath(this.layout.store);
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR")
        return { images: [], skipped: [] };
      throw fsError(e, `read ${this.layout.store}`);
    }
    const images: { name: string; file: string }[] = [];
    const skipped: { name: string; reason: string }[] = [];
    const regular = new Set(entries.filter((e) => e.isFile()).map((e) => e.name));
    for (const name of entries
      .map((e) => e.name)
      .filter(isImageName)
      .sort()) {
      // A regular file right in the resolved store dir has nothing to resolve: no lstat walk
      // per image (the walk is most of the cost of listing a large store).
      if (regular.has(name)) {
        // Concatenated, not path.join: dir is resolved already and a name has no slash, and
        // join's normalising is a visible part of listing 10,000 images.
        images.push({ name, file: `${dir}/${name}` });
        continue;
      }
      try {
        images.push({ name, file: await this.imageFile(name) });
      } catch (e) {
        if (!(e instanceof ExtctlError)) throw e;
        skipped.push({ name, reason: e.message });
      }
    }
    return { images, skipped, listing: { dir, names: new Set(entries.map((e) => e.name)) } };
  }

  /** Names linked in a profile dir. */
  async profileLinks(profile: Profile): Promise<string[]> {
    return this.rawEntries(profileDir(this.kind, profile));
  }

  /** Names linked in the runtime dir (/run/extensions). */
  async runtimeLinks(): Promise<string[]> {
    return this.rawEntries(this.layout.runtime);
  }

  /**
   * Every link in the runtime dir with the store image it stands for: the file its target names
   * when it leads into this store (directly or through a profile dir), else the link's own name.
   * On systemd 252-254 `/run/extensions/tool.raw` stands for the store's tool.sysext.raw.
   */
  async runtimeImages(): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    for (const link of await this.runtimeLinks()) {
      const target = await readlink(await this.entryHost(this.runtimeLinkPath(link))).catch(
        () => undefined,
      );
      const absolute =
        target === undefined
          ? undefined
          : target.startsWith("/")
            ? target
            : path.posix.join(this.layout.runtime, target);
      const inStore =
        absolute !== undefined &&
        path.posix.normalize(absolute).startsWith(`${this.layout.store}/`) &&
        isImageName(path.posix.basename(absolute));
      result.set(link, inStore ? path.posix.basename(absolute) : link);
    }
    return result;
  }

  /** The runtime link that stands for store image `image` (see runtimeImages), if any. */
  async runtimeLinkOf(image: string): Promise<string | undefined> {
    let found: string | undefined;
    for (const [link, stored] of await this.runtimeImages()) {
      if (stored !== image) continue;
      // Its own name first: that is the one systemd sees when both exist.
      if (link === image) return link;
      found ??= link;
    }
    return found;
  }

  /** Profiles in which `name` is enabled. */
  async enabledIn(name: string): Promise<Profile[]> {
    const result: Profile[] = [];
    for (const profile of PROFILES) {
      if (await this.exists(this.profileLinkPath(profile, name))) result.push(profile);
    }
    return result;
  }

  async exists(nodePath: string): Promise<boolean> {
    try {
      await lstat(await this.entryHost(nodePath));
      return true;
    } catch (e) {
      if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return false;
      throw fsError(e, `read ${nodePath}`);
    }
  }

  async linkInfo(nodePath: string): Promise<LinkInfo | undefined> {
    let target: string;
    try {
      target = await readlink(await this.entryHost(nodePath));
    } catch (e) {
      if (["ENOENT", "ENOTDIR", "EINVAL"].includes(errnoCode(e) ?? "")) return undefined;
      throw fsError(e, `read the link ${nodePath}`);
    }
    const absolute = target.startsWith("/")
      ? target
      : path.posix.join(path.posix.dirname(nodePath), target);
    const final = await this.root.resolve(absolute);
    let resolves = false;
    try {
      resolves = (await stat(this.host(final))).isFile();
    } catch {
      resolves = false;
    }
    return { name: path.posix.basename(nodePath), target: absolute, resolves };
  }

  /**
   * The target to write for a link at `linkNodePath`: the absolute node path on a real node, as
   * Kairos writes it; relative under --root, because systemd-sysext --root does not resolve
   * absolute targets inside the root, and a relative one reads the same from both sides.
   */
  linkTargetFor(linkNodePath: string, targetNodePath: string): string {
    if (this.root.isHostRoot) return targetNodePath;
    return path.posix.relative(path.posix.dirname(linkNodePath), targetNodePath);
  }

  /** Where a link points, as an absolute node path (undefined when it is not a link). */
  async linkTarget(nodePath: string): Promise<string | undefined> {
    return (await this.linkInfo(nodePath))?.target;
  }

  /** Makes `<store>/<profile>/NAME -> <store>/NAME`; returns false when it was already there. */
  async linkProfile(profile: Profile, name: string): Promise<boolean> {
    const link = this.profileLinkPath(profile, name);
    if (await this.exists(link)) return false;
    await this.ensureDir(profileDir(this.kind, profile));
    try {
      await symlinkAtomic(
        this.linkTargetFor(link, this.imagePath(name)),
        await this.writeHost(link),
      );
    } catch (e) {
      throw fsError(e, `enable ${name} in the ${profile} profile (${link})`);
    }
    return true;
  }

  /**
   * Makes `/run/extensions/LINK -> <store>/<profile>/NAME`, LINK being NAME or the name the root's
   * systemd finds the image's release file under (image/link-name.ts); false when already there.
   */
  async linkRuntime(profile: Profile, name: string, linkName: string = name): Promise<boolean> {
    const link = this.runtimeLinkPath(linkName);
    const wanted = this.profileLinkPath(profile, name);
    const existing = await this.linkInfo(link);
    if (existing && existing.target === wanted) return false;
    await this.ensureDir(this.layout.runtime);
    try {
      await symlinkAtomic(this.linkTargetFor(link, wanted), await this.writeHost(link));
    } catch (e) {
      throw fsError(e, `link ${name} into ${this.layout.runtime}`);
    }
    return true;
  }

  /**
   * Removes the link at `nodePath`; returns false when nothing was there. Only symlinks: a
   * real file in a profile or runtime dir is not ours to delete, and is an error saying so.
   */
  async unlinkPath(nodePath: string): Promise<boolean> {
    const host = await this.writeHost(nodePath);
    try {
      const st = await lstat(host);
      if (!st.isSymbolicLink()) {
        throw new ExtctlError(
          "exists",
          `${host} is ${st.isFile() ? "a regular file" : "not a symlink"}, not a link extctl made; it is left alone`,
          { hint: "move it away by hand if it should not be there" },
        );
      }
      await unlink(host);
      return true;
    } catch (e) {
      if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return false;
      throw fsError(e, `remove ${nodePath}`);
    }
  }

  /** Deletes the image file `name` from the store (and syncs the store dir). */
  async deleteImage(name: string): Promise<void> {
    try {
      const host = await this.writeHost(this.imagePath(name));
      await unlink(host);
      await fsyncDir(path.dirname(host));
    } catch (e) {
      throw fsError(e, `delete ${this.imagePath(name)}`);
    }
  }

  /** Entries named *.raw that are regular files or symlinks (what Kairos counts as images). */
  private async rawEntries(nodeDir: string): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(await this.root.readPath(nodeDir), { withFileTypes: true });
    } catch (e) {
      // A missing store or profile dir lists empty (Kairos's own tests).
      if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return [];
      throw fsError(e, `read ${nodeDir}`);
    }
    return entries
      .filter((e) => isImageName(e.name) && (e.isFile() || e.isSymbolicLink()))
      .map((e) => e.name)
      .sort();
  }
}

export function isProfile(value: string): value is Profile {
  return (PROFILES as readonly string[]).includes(value);
}

/**
 * Removes what killed runs left behind: `.extctl-*` temp files and links (downloads, link swaps)
 * of processes that no longer exist, in both kinds' store, profile and runtime dirs. Called
 * with the root's lock held, so no live extctl is writing there.
 */
export async function sweepAbandonedTemps(root: Root): Promise<void> {
  const dirs: string[] = [];
  for (const kind of ["sysext", "confext"] as const) {
    const layout = LAYOUTS[kind];
    dirs.push(layout.store, layout.runtime, ...PROFILES.map((p) => profileDir(kind, p)));
    // The versions dirs of extensions installed by name: killed fetches and switches.
    const versions = `${layout.store}/${VERSIONS_DIR}`;
    const names = await readdir(await root.readPath(versions)).catch(() => [] as string[]);
    dirs.push(...names.filter((n) => !n.startsWith(".")).map((n) => `${versions}/${n}`));
  }
  const abandoned = (name: string) => {
    const pid = tempOwnerPid(name);
    return pid !== undefined && !processAlive(pid);
  };
  await Promise.all(
    dirs.map(async (dir) => {
      // A dir that leads outside the root is refused by the command itself; never sweep there.
      const host = await root.writePath(dir).catch(() => undefined);
      if (host !== undefined) await sweepTempFiles(host, abandoned);
    }),
  );
}
