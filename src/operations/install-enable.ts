// `install URI|NAME --enable PROFILE... [--now]`: install and enable in one locked step, as
// Kairos's phonehome install does. When enabling fails (the policy refuses the image, or with
// --now systemd does not merge it), the install is undone too: the node ends as it was.
import { link, lstat, mkdir, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError, isExtctlError } from "../util/errors.js";
import { tempPathBeside, writeFileAtomic } from "../util/atomic.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { VersionedStore } from "../domain/store/versions.js";
import { isLiveProfile, readSentinels } from "../domain/activate/boot-state.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import { install, type InstallOptions, type InstallResult } from "./install.js";
import { installByName, type InstallNameOptions, type InstallNameResult } from "./install-name.js";
import { enable, type EnableResult } from "./enable.js";
import { requireRoot, withLock } from "./guard.js";

export interface EnableAfterInstall {
  /** Profiles to enable the installed image(s) in, in order. */
  profiles: Profile[];
  /** Also link into /run and refresh, for the profile the node is booted in. */
  now?: boolean;
  refresh?: RefreshMode;
  /** Extra trusted certificates for the policy check (as enable --trust). */
  trust?: string[];
}

export type InstallEnableRequest =
  { from: "uri"; install: InstallOptions } | { from: "name"; install: InstallNameOptions };

export interface InstallEnableResult {
  kind: ExtensionKind;
  installed: InstallResult | InstallNameResult;
  /** One per image and profile, in order; the --now one last. */
  enabled: EnableResult[];
  /** Set with --now when no given profile is the booted one. */
  notLive?: string;
}

/**
 * What the store held before the install, so that a failed enable can put it back: a hard link
 * to every image (cheap, and an image the install replaces keeps its bytes through it), and for
 * a name, its version record and the files of its versions directory.
 */
class InstallUndo {
  private constructor(
    private readonly store: ExtensionStore,
    private readonly images: ReadonlySet<string>,
    private readonly backupDir: string,
    private readonly byName?: { name: string; record?: string; files: Set<string> },
  ) {}

  static async begin(store: ExtensionStore, name?: string): Promise<InstallUndo> {
    const storeDir = await store.ensureStore();
    const images = new Set(await store.images());
    // In the store dir (same filesystem for link and rename); a killed run leaves a `.extctl-`
    // dir that the next run sweeps.
    const backupDir = tempPathBeside(path.join(storeDir, "install"), "undo");
    await mkdir(backupDir, { mode: 0o700 });
    for (const image of images) await link(path.join(storeDir, image), path.join(backupDir, image));
    if (name === undefined) return new InstallUndo(store, images, backupDir);
    const versions = new VersionedStore(store);
    const record = await versions.read(name);
    const dir = await store.writeHost(versions.dir(name));
    const files = new Set(await readdir(dir).catch(() => [] as string[]));
    return new InstallUndo(store, images, backupDir, {
      name,
      ...(record === undefined ? {} : { record: JSON.stringify(record, null, 2) + "\n" }),
      files,
    });
  }

  /** Puts the store back as it was: new images deleted, replaced ones restored, the record too. */
  async undo(): Promise<void> {
    const storeDir = await this.store.ensureStore();
    for (const image of await this.store.images()) {
      if (!this.images.has(image)) await this.store.deleteImage(image);
    }
    for (const image of this.images) {
      const saved = path.join(this.backupDir, image);
      const now = await lstat(path.join(storeDir, image)).catch(() => undefined);
      const before = await lstat(saved);
      if (now?.ino !== before.ino || now.dev !== before.dev)
        await rename(saved, path.join(storeDir, image));
    }
    if (!this.byName) return;
    const versions = new VersionedStore(this.store);
    const { name, record, files } = this.byName;
    if (record === undefined) {
      await versions.removeAll(name);
      return;
    }
    const dir = await this.store.writeHost(versions.dir(name));
    await writeFileAtomic(path.join(dir, "record.json"), record);
    for (const file of await readdir(dir)) {
      if (!files.has(file)) await rm(path.join(dir, file), { recursive: true, force: true });
    }
  }

  async finish(): Promise<void> {
    await rm(this.backupDir, { recursive: true, force: true });
  }
}

/** The store file names the install put in place. */
function installedImages(result: InstallResult | InstallNameResult): string[] {
  return "images" in result ? result.images.map((i) => i.name) : [result.image];
}

export async function installAndEnable(
  ctx: Context,
  request: InstallEnableRequest,
  options: EnableAfterInstall,
): Promise<InstallEnableResult> {
  const kind = request.install.kind;
  if (options.profiles.length === 0)
    throw new ExtctlError(
      "usage",
      "--enable needs a profile: active, passive, recovery or common",
      {
        exitCode: 2,
      },
    );
  if (request.from === "name" && request.install.dryRun)
    throw new ExtctlError("usage", "--dry-run and --enable do not go together", { exitCode: 2 });
  requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, kind);
  return withLock(ctx, async (locked) => {
    let name: string | undefined;
    if (request.from === "name") {
      const { parseRequest } = await import("../domain/lifecycle/steps.js");
      name = parseRequest(request.install.spec, request.install.version).name;
    }
    const undo = await InstallUndo.begin(store, name);
    let refreshed = false;
    // Profile links this command made: undone with the install (enable --now undoes its own).
    const created: string[] = [];
    let installedAny = false;
    try {
      const installed =
        request.from === "uri"
          ? await install(locked, request.install)
          : await installByName(locked, request.install);
      installedAny = true;
      const enabled: EnableResult[] = [];
      const images = installedImages(installed);
      const trust = options.trust === undefined ? {} : { trust: options.trust };
      for (const image of images)
        for (const profile of options.profiles) {
          const done = await enable(locked, { kind, name: image, profile, ...trust });
          if (done.linked) created.push(store.profileLinkPath(profile, image));
          enabled.push(done);
        }
      const result: InstallEnableResult = { kind, installed, enabled };
      if (options.now) {
        const sentinels = await readSentinels(ctx.root);
        const live = options.profiles.find((p) => isLiveProfile(p, sentinels));
        if (live === undefined) {
          result.notLive = `the node is not booted in ${options.profiles.join(" or ")}`;
          ctx.log.info(`enabled but not merged now: ${result.notLive}`);
        } else {
          for (const image of images) {
            refreshed = true;
            enabled.push(
              await enable(locked, {
                kind,
                name: image,
                profile: live,
                now: true,
                ...trust,
                ...(options.refresh ? { refresh: options.refresh } : {}),
              }),
            );
          }
        }
      }
      await undo.finish();
      return result;
    } catch (e) {
      if (!isExtctlError(e) || !installedAny) {
        await undo.finish();
        throw e;
      }
      await undoAll(
        locked,
        store,
        undo,
        created,
        refreshed ? (options.refresh ?? "auto") : undefined,
      );
      throw new ExtctlError(e.code, `${e.message}; the install was undone too`, {
        cause: e,
        hint: "nothing was installed or enabled; `extctl check` explains what systemd requires",
        ...(e.exitCode === undefined ? {} : { exitCode: e.exitCode }),
      });
    }
  });
}

/** Removes the profile links this command made, restores the store (an image the install added
 * goes with its /run link), and refreshes again when a refresh ran, so that an image that was
 * merged before is merged as it was. */
async function undoAll(
  ctx: Context,
  store: ExtensionStore,
  undo: InstallUndo,
  created: readonly string[],
  refresh: RefreshMode | undefined,
): Promise<void> {
  for (const nodePath of created) await store.unlinkPath(nodePath);
  const before = await store.images();
  await undo.undo();
  const after = new Set(await store.images());
  for (const image of before)
    if (!after.has(image)) await store.unlinkPath(store.runtimeLinkPath(image));
  await undo.finish();
  if (refresh === undefined) return;
  const [{ activate }, { LinkTransaction }] = await Promise.all([
    import("../domain/activate/activation.js"),
    import("../domain/activate/transaction.js"),
  ]);
  await activate(ctx, store, new LinkTransaction(ctx.root), refresh).catch((e: unknown) =>
    ctx.log.warn(`refreshing after the undo failed: ${(e as Error).message}`),
  );
}
