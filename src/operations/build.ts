// `extctl build`: turns a tree, rootfs archive or container image into a sysext or confext image
// (a signed erofs/squashfs DDI by default), reproducibly, written atomically into the output dir.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { makeDir } from "../util/owned-state.js";
import { chmod, mkdir, mkdtemp, open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Context } from "../util/context.js";
import { lastErrorLine } from "../util/runner.js";
import { ExtctlError, errnoCode, fsError } from "../util/errors.js";
import {
  TEMP_PREFIX,
  fsyncDir,
  processAlive,
  sweepTempFiles,
  tempOwnerPid,
  tempPathBeside,
} from "../util/atomic.js";
import { humanBytes } from "../util/progress.js";
import type { ExtensionKind } from "../domain/store/layout.js";
import type { Architecture } from "../domain/image/partition-types.js";
import { filterTree, keptTopLevels, newestMtime } from "../domain/build/filter.js";
import {
  carriedContent,
  checkIncludePaths,
  includeSubtrees,
  type CarriedContent,
} from "../domain/build/include.js";
import { defaultSeed, uuidBytes, uuidString, SeededIds } from "../domain/build/ids.js";
import {
  buildFormat,
  makeFilesystem,
  type FilesystemFormat,
  DEFAULT_COMPRESS,
} from "../domain/build/mkfs.js";
import {
  checkImageName,
  legacyImageName,
  namingProblems,
  releaseFilePath,
  renderReleaseFile,
  systemdArchitecture,
  hostGoArch,
  type GoArch,
} from "../domain/build/release-file.js";
import { loadSource, type LayerSelection } from "../domain/build/source.js";
import { stageTree } from "../domain/build/staging.js";
import { parentsOf, type FileTree } from "../domain/build/tree.js";
import { writeDdi, type DdiPartitionInfo } from "../domain/build/ddi-writer.js";

export interface BuildOptions {
  kind: ExtensionKind;
  name: string;
  source: string;
  /** Default: the current directory. */
  outputDir?: string;
  privateKey?: string;
  certificate?: string;
  arch?: string;
  format?: FilesystemFormat;
  compress?: string;
  withOpt?: boolean;
  serviceReload?: boolean;
  osId?: string;
  sysextLevel?: string;
  versionId?: string;
  version?: string;
  scope?: string;
  seed?: string;
  noVerity?: boolean;
  verityBlockSize?: number;
  layers?: LayerSelection;
  base?: string;
  keepOwners?: boolean;
  /** Keep only these subtrees of the source (paths from the image root, e.g. usr/lib/firmware). */
  include?: string[];
  /** oci:// sources: registry hosts reached over plain http. */
  insecureRegistries?: string[];
  /** oci:// sources: registry credentials "USER:PASS". */
  creds?: string;
  /** Oldest systemd the image must work on; below 255 adds the release file 252-254 look for. */
  systemd?: number;
}

export interface BuildResult {
  path: string;
  name: string;
  kind: ExtensionKind;
  format: FilesystemFormat;
  compress: string;
  architecture: Architecture;
  size: number;
  sha256: string;
  verity: boolean;
  signed: boolean;
  rootHash?: string;
  certificateFingerprint?: string;
  seed: string;
  sourceDateEpoch: number;
  releaseFiles: string[];
  entries: number;
  files: number;
  bytes: number;
  dropped: Record<string, number>;
  /** The subtrees kept (--include), normalised; absent when the whole source was used. */
  include?: string[];
  /** What came from the source (extctl's release files not counted): what the OS can drop. */
  carried: CarriedContent;
  partitions?: DdiPartitionInfo[];
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    const code = errnoCode(e);
    throw new ExtctlError(
      "usage",
      `cannot read the ${what} ${file}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String((e as Error).message)}`,
      { hint: `give a readable PEM ${what} file` },
    );
  }
}

function sourceDateEpoch(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return undefined;
  if (!/^\d+$/.test(raw)) {
    throw new ExtctlError("usage", `SOURCE_DATE_EPOCH="${raw}" is not a number of seconds`, {
      hint: "set it to a UNIX time, e.g. $(git log -1 --format=%ct)",
    });
  }
  return Number(raw);
}

function addReleaseFile(tree: FileTree, treePath: string, text: string, mtime: number): boolean {
  for (const parent of parentsOf(treePath)) {
    if (tree.get(parent)?.type !== "dir") {
      tree.set({ path: parent, type: "dir", mode: 0o755, uid: 0, gid: 0, mtime, size: 0 });
    }
  }
  const replaced = tree.has(treePath);
  const data = Buffer.from(text, "utf8");
  tree.set({
    path: treePath,
    type: "file",
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime,
    size: data.length,
    content: { kind: "inline", data },
  });
  return replaced;
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), hash);
  return hash.digest("hex");
}

/**
 * `fallocate --insert-range`: moves a file's bytes up without copying them (ext4, xfs); false
 * where it cannot (tmpfs, overlayfs, no util-linux), and the DDI is then assembled by copying.
 */
async function insertRange(ctx: Context, file: string, length: number): Promise<boolean> {
  try {
    const args = ["--insert-range", "--offset", "0", "--length", String(length), file];
    return (await ctx.runner.run("fallocate", args)).exitCode === 0;
  } catch {
    return false;
  }
}

export async function buildImage(ctx: Context, options: BuildOptions): Promise<BuildResult> {
  const { kind, name } = options;
  checkImageName(name);
  const goArch = (options.arch ?? hostGoArch()) as GoArch;
  const architecture = systemdArchitecture(goArch);
  const format = buildFormat(options.format);
  const compress = options.compress ?? DEFAULT_COMPRESS[format];
  const legacy = options.systemd !== undefined && options.systemd < 255;
  const verityBlockSize = options.verityBlockSize ?? (legacy ? 512 : 4096);
  if (verityBlockSize !== 512 && verityBlockSize !== 4096) {
    throw new ExtctlError(
      "usage",
      `--verity-block-size must be 512 or 4096, not ${verityBlockSize}`,
    );
  }
  if ((options.privateKey === undefined) !== (options.certificate === undefined)) {
    throw new ExtctlError("usage", "--private-key and --certificate go together", {
      hint: "give both to sign the image, or neither for an unsigned one",
    });
  }
  if (options.noVerity && options.privateKey !== undefined) {
    throw new ExtctlError("usage", "--no-verity images cannot be signed", {
      hint: "drop --no-verity, or drop --private-key and --certificate",
    });
  }
  const seed = uuidString(uuidBytes(options.seed ?? defaultSeed(kind)));
  const include =
    options.include === undefined || options.include.length === 0
      ? undefined
      : checkIncludePaths(options.include, keptTopLevels(kind, options.withOpt ?? false));
  for (const problem of namingProblems(kind, name)) ctx.log.warn(problem);

  // Check the key pair before any long work, so a bad key costs nothing and leaves nothing.
  let signer: { key: string; cert: string } | undefined;
  if (options.privateKey !== undefined && options.certificate !== undefined) {
    signer = {
      key: await readPem(options.privateKey, "private key"),
      cert: await readPem(options.certificate, "certificate"),
    };
    const { signRootHash } = await import("../domain/trust/signature.js");
    await signRootHash("0".repeat(64), signer.key, signer.cert);
  }

  const outputDir = path.resolve(options.outputDir ?? ".");
  try {
    // Like mkosi and `docker build -o`: a missing output directory is made.
    const st = await stat(outputDir).catch(() => undefined);
    if (st === undefined) await makeDir(outputDir, { checkExisting: false });
    else if (!st.isDirectory()) {
      throw new ExtctlError("not-a-directory", `the output ${outputDir} is not a directory`);
    }
  } catch (e) {
    throw fsError(e, `use the output directory ${outputDir}`);
  }
  const output = path.join(outputDir, `${name}.${kind}.raw`);
  // A build killed with SIGKILL leaves its staging dir, filesystem and DDI temps behind; they
  // carry its pid, so the next build here removes those of dead processes (never a live one's).
  await sweepTempFiles(outputDir, (entry) => {
    const pid = tempOwnerPid(entry);
    return pid !== undefined && pid !== process.pid && !processAlive(pid);
  });

  ctx.log.info(`reading ${options.source}`);
  const fromRegistry = [options.source, options.base].some((s) => s?.startsWith("oci://"));
  const downloads = fromRegistry
    ? await mkdtemp(path.join(outputDir, `${TEMP_PREFIX}layers-${process.pid}-`)).catch(
        (e: unknown) => {
          throw fsError(e, `create a download directory in ${outputDir}`);
        },
      )
    : undefined;
  try {
    const result = await buildFromSource(ctx, options, {
      goArch,
      architecture,
      format,
      compress,
      legacy,
      verityBlockSize,
      seed,
      signer,
      outputDir,
      output,
      downloads,
      include,
    });
    if (!legacy) {
      ctx.log.warn(
        `systemd 252-254 call ${name}.${kind}.raw "${legacyImageName(kind, name)}" and will not find its release file; build with --systemd 252 for an image that works there too`,
      );
    }
    return result;
  } finally {
    if (downloads) await rm(downloads, { recursive: true, force: true });
  }
}

interface Prepared {
  goArch: GoArch;
  architecture: Architecture;
  format: FilesystemFormat;
  compress: string;
  legacy: boolean;
  verityBlockSize: number;
  seed: string;
  signer: { key: string; cert: string } | undefined;
  outputDir: string;
  output: string;
  downloads: string | undefined;
  include: string[] | undefined;
}

// Defined as false by the one-file build (scripts/package-sea.ts); undeclared elsewhere.
declare const EXTCTL_TEST_HOOKS: boolean | undefined;

/**
 * Test hook: with NODE_ENV=test, EXTCTL_TEST_AFTER_WALK is a shell command run between the walk
 * of the source and staging, so the e2e suite can swap a source file at exactly that moment.
 * Test builds only: the condition folds to false in the one file (dist/extctl), and esbuild
 * drops the hook's code with it.
 */
async function afterWalkTestHook(ctx: Context): Promise<void> {
  if (typeof EXTCTL_TEST_HOOKS === "undefined" || EXTCTL_TEST_HOOKS) {
    const command = ctx.env.EXTCTL_TEST_AFTER_WALK;
    if (!command || ctx.env.NODE_ENV !== "test") return;
    const result = await ctx.runner.run("sh", ["-c", command]);
    if (result.exitCode !== 0)
      throw new ExtctlError(
        "internal",
        `the after-walk test hook failed: ${lastErrorLine(result)}`,
      );
  }
}

async function buildFromSource(
  ctx: Context,
  options: BuildOptions,
  prepared: Prepared,
): Promise<BuildResult> {
  const { kind, name } = options;
  const { goArch, architecture, format, compress, legacy, verityBlockSize, seed, signer } =
    prepared;
  const { outputDir, output, downloads } = prepared;
  const source = await loadSource(ctx, options.source, {
    arch: goArch,
    ...(options.layers ? { layers: options.layers } : {}),
    ...(options.base ? { base: options.base } : {}),
    ...(downloads ? { downloadDir: downloads } : {}),
    ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
    ...(options.creds ? { creds: options.creds } : {}),
  });
  await afterWalkTestHook(ctx);
  const clamp = sourceDateEpoch(ctx.env);
  // Before the kind's own filter, so its checks (os-release, special files, nothing left) see
  // only what is included: an OS image's /usr/lib/os-release must not stop a firmware build.
  const lastLayerOnly =
    source.kind === "image" && options.base === undefined && (options.layers ?? "last") === "last";
  const included = prepared.include
    ? includeSubtrees(source.tree, prepared.include, { lastLayerOnly })
    : source.tree;
  const filtered = filterTree(included, {
    kind,
    withOpt: options.withOpt ?? false,
    keepOwners: options.keepOwners ?? false,
    ...(clamp !== undefined ? { clampMtime: clamp } : {}),
  });
  if (filtered.summary) ctx.log.info(filtered.summary);
  const tree = filtered.tree;
  const carried = carriedContent(tree);
  const epoch = clamp ?? newestMtime(tree);

  const release = renderReleaseFile({
    kind,
    name,
    arch: goArch,
    ...(options.osId !== undefined ? { osId: options.osId } : {}),
    ...(options.sysextLevel !== undefined ? { level: options.sysextLevel } : {}),
    ...(options.versionId !== undefined ? { versionId: options.versionId } : {}),
    ...(options.scope !== undefined ? { scope: options.scope } : {}),
    ...(options.version !== undefined ? { version: options.version } : {}),
    serviceReload: options.serviceReload ?? false,
  });
  const releaseFiles = [releaseFilePath(kind, name)];
  if (legacy) releaseFiles.push(releaseFilePath(kind, legacyImageName(kind, name)));
  for (const file of releaseFiles) {
    if (addReleaseFile(tree, file, release, epoch))
      ctx.log.warn(`replacing ${file} from the source`);
  }

  const ids = new SeededIds(seed);
  // The staged tree gets the source's modes (a 0777 directory stays 0777), so it lives one level
  // down in a 0700 directory from mkdtemp: nobody else can reach it to swap a file before mkfs.
  const stagingParent = await mkdtemp(
    path.join(outputDir, `${TEMP_PREFIX}staging-${process.pid}-`),
  ).catch((e: unknown) => {
    throw fsError(e, `create a staging directory in ${outputDir}`);
  });
  const staging = path.join(stagingParent, "root");
  let stagingRemoval: Promise<void> | undefined;
  const filesystem = tempPathBeside(output, options.noVerity ? "tmp" : "fs");
  const ddi = tempPathBeside(output, "tmp");
  try {
    const entries = tree.size;
    let total = 0;
    for (const e of tree.entries()) if (e.type === "file") total += e.size;
    ctx.log.info(`staging ${entries} entries (${humanBytes(total)})`);
    const staged = ctx.progress("staging", total, "bytes");
    await mkdir(staging, { mode: 0o700 });
    const stageResult = await stageTree(tree, staging, {
      layers: source.archives,
      keepOwners: options.keepOwners ?? false,
      rootMtime: epoch,
      progress: staged,
    });
    staged.stop();

    ctx.log.info(`making the ${format} filesystem (${compress})`);
    await makeFilesystem(ctx, {
      format,
      compress,
      stagingDir: staging,
      output: filesystem,
      epoch,
      uuid: ids.filesystemUuid(),
      keepOwners: options.keepOwners ?? false,
    });
    // Removing thousands of staged files overlaps with hashing and assembling the image.
    stagingRemoval = rm(stagingParent, { recursive: true, force: true });

    let result: BuildResult;
    const common = {
      name,
      kind,
      format,
      compress,
      architecture,
      seed,
      sourceDateEpoch: epoch,
      releaseFiles,
      entries,
      files: stageResult.files,
      bytes: stageResult.bytes,
      dropped: Object.fromEntries(filtered.dropped),
      ...(prepared.include ? { include: prepared.include } : {}),
      carried,
    };
    if (options.noVerity) {
      const size = (await stat(filesystem)).size;
      const sha256 = await sha256OfFile(filesystem);
      const handle = await open(filesystem, "r+");
      // An image is never setuid or writable by others, whatever the umask (issue 12).
      await handle.chmod(0o644);
      await handle.sync().finally(() => handle.close());
      await rename(filesystem, output);
      result = { ...common, path: output, size, sha256, verity: false, signed: false };
    } else {
      let fingerprint: string | undefined;
      const ddiResult = await writeDdi({
        filesystem,
        output: ddi,
        architecture,
        seed,
        verityBlockSize: verityBlockSize as 512 | 4096,
        insertRange: (file, length) => insertRange(ctx, file, length),
        stage: (label, bytes) => {
          ctx.log.info(label);
          return ctx.progress(label, bytes, "bytes");
        },
        ...(signer
          ? {
              sign: async (rootHash: string) => {
                ctx.log.info("signing the root hash");
                const { signRootHash } = await import("../domain/trust/signature.js");
                const signed = await signRootHash(rootHash, signer.key, signer.cert);
                fingerprint = signed.fingerprint;
                return signed.json;
              },
            }
          : {}),
      });
      await chmod(ddiResult.path, 0o644);
      await rename(ddiResult.path, output);
      result = {
        ...common,
        path: output,
        size: ddiResult.size,
        sha256: ddiResult.sha256,
        verity: true,
        signed: signer !== undefined,
        rootHash: ddiResult.rootHash,
        ...(fingerprint ? { certificateFingerprint: fingerprint } : {}),
        partitions: ddiResult.partitions,
      };
    }
    await fsyncDir(outputDir);
    ctx.log.info(`wrote ${output} (${humanBytes(result.size)})`);
    if (prepared.include) {
      ctx.log.info(
        `the extension carries ${carried.files} ${carried.files === 1 ? "file" : "files"} (${humanBytes(carried.bytes)}) of ${options.source} that the OS image can drop`,
      );
    }
    return result;
  } catch (e) {
    throw errnoCode(e) !== undefined ? fsError(e, `build ${output}`) : e;
  } finally {
    await (stagingRemoval ?? rm(stagingParent, { recursive: true, force: true }));
    await rm(filesystem, { force: true });
    await rm(ddi, { force: true });
  }
}
