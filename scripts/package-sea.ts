// `npm run package [-- --arch x64|arm64]`: writes dist/extctl (x86-64) or dist/extctl-linux-arm64,
// one executable for linux that needs no Node.js, npm or compiler where it runs: a Node single
// executable application on the runtime scripts/node-runtime.json pins (fetched from the npm
// registry and checked by scripts/node-runtime.ts).
//
// How: esbuild bundles the CLI, plus the verity worker's source as a string, and each npm package
// it loads on demand into a bundle of its own (all pure JavaScript); one command run through
// scripts/sea-loader.cjs writes V8's code cache for the CLI bundle (with the target's node: here,
// or under qemu-user for arm64 when scripts/arm64-sysroot.sh's sysroot is there); the pinned
// x86-64 node writes the SEA blob (the loader as main script, the bundles and the cache as
// assets), and postject injects it into a stripped copy of the target's node binary.
//
// The program takes no code or options from the environment: the blob sets execArgvExtension
// "none" (NODE_OPTIONS is ignored) and --openssl-config (OPENSSL_CONF is ignored), the loader
// starts itself again without Node's other variables, and test hooks are compiled out
// (EXTCTL_TEST_HOOKS is false here).
import { build } from "esbuild";
import { externalPackages, lazyCommanderChildProcess } from "./bundle-cli.js";
import {
  fetchNode,
  isNodeArch,
  pinnedRuntime,
  RELEASE_ARCH,
  type NodeArch,
} from "./node-runtime.js";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import { builtinModules, createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC = path.join(REPO, "src");
const WORK = path.join(REPO, "dist/sea");
/** The release's test hooks stay out: build.ts's EXTCTL_TEST_AFTER_WALK and any like it. */
const RELEASE_DEFINES = { EXTCTL_TEST_HOOKS: "false" };
const ARCH_NAMES: Readonly<Record<string, string>> = { x64: "", arm64: "-linux-arm64" };
/** The fuse postject flips so that node looks for the blob (Node's documented sentinel). */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/** dist/extctl on x86-64 (the name the README and the tests use), dist/extctl-linux-arm64 on arm64. */
export function packagePath(arch: string = process.arch): string {
  const suffix = ARCH_NAMES[arch];
  if (suffix === undefined || process.platform !== "linux")
    throw new Error(
      `npm run package makes linux x64 or arm64 programs, not ${process.platform}-${arch}`,
    );
  return path.join(REPO, "dist", `extctl${suffix}`);
}

/** The node_modules directories (relative to the repository) of every npm package bundled. */
const bundledPackageDirs = new Set<string>();

/**
 * One CommonJS bundle: of our `entry`, or of the npm package `stdin` re-exports. `external` are
 * the npm packages left to the loader, which serves each from its own asset (see main()).
 */
async function bundle(
  input: { entry: string } | { stdin: string },
  options: { define?: Record<string, string>; external?: string[] } = {},
): Promise<string> {
  const result = await build({
    metafile: true,
    absWorkingDir: REPO,
    ...("entry" in input
      ? { entryPoints: [input.entry] }
      : { stdin: { contents: input.stdin, resolveDir: REPO, loader: "js" } }),
    bundle: true,
    write: false,
    format: "cjs",
    platform: "node",
    target: "node20",
    define: { ...RELEASE_DEFINES, ...options.define },
    external: options.external ?? [],
    plugins: [lazyCommanderChildProcess],
    supported: { "dynamic-import": false },
    // import.meta is empty in CommonJS; the two modules that use it ask util/bundled.ts first.
    logOverride: { "empty-import-meta": "silent" },
    legalComments: "none",
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: "warning",
  });
  const [file] = result.outputFiles;
  if (!file) throw new Error(`esbuild wrote nothing for ${JSON.stringify(input)}`);
  for (const input of Object.keys(result.metafile.inputs)) {
    // The innermost node_modules/NAME (or @SCOPE/NAME) that holds the file: its package.
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1]) bundledPackageDirs.add(m[1]);
  }
  return file.text;
}

/** The requires left in a bundle that are neither Node built-ins nor `packaged` (there must be none). */
function strayRequires(source: string, packaged: readonly string[]): string[] {
  const builtins = new Set([...builtinModules, ...packaged]);
  const found = new Set<string>();
  for (const m of source.matchAll(/\brequire\("([^"]+)"\)/g)) {
    const name = m[1] as string;
    // "node:" names are built-ins by their scheme, also newer ones a package loads only when
    // present (undici's node:sqlite cache store).
    if (!name.startsWith("node:") && !builtins.has(name)) found.add(name);
  }
  return [...found];
}

interface Target {
  arch: NodeArch;
  /** The node binary the program is made of. */
  node: string;
  /** How to run that binary here (for the code cache), if this machine can. */
  runner: string[] | undefined;
}

/** The arm64 sysroot of scripts/arm64-sysroot.sh, if it was made. */
export function arm64Sysroot(): string | undefined {
  const cache = process.env.EXTCTL_LANES_CACHE ?? "/var/cache/extctl-lanes";
  const root = path.join(cache, "arm64-sysroot/root");
  return existsSync(path.join(root, "lib/ld-linux-aarch64.so.1")) ? root : undefined;
}

/** qemu-aarch64-static's path, if installed. */
function qemuAarch64(): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin").split(":")) {
    const file = path.join(dir, "qemu-aarch64-static");
    if (dir && existsSync(file)) return file;
  }
  return undefined;
}

/**
 * `--arch x64|arm64` (default: this machine's), `--node FILE` (a node binary of the pinned
 * version instead of the fetched one, e.g. offline), `--no-code-cache` (see release.ts). V8 accepts a code cache only from the same
 * version, flags and CPU architecture, so it is made by the target's node itself: directly for
 * this machine's architecture, under qemu-user for arm64 when there is a sysroot; else none is
 * carried and the program compiles its bundle at start-up.
 */
async function targetOf(argv: readonly string[]): Promise<Target> {
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const arch = at("--arch") ?? process.arch;
  if (!isNodeArch(arch) || process.platform !== "linux")
    throw new Error(`npm run package makes linux x64 or arm64 programs, not linux-${arch}`);
  const given = at("--node");
  const node = given ? path.resolve(given) : await fetchNode(arch);
  let runner: string[] | undefined;
  if (argv.includes("--no-code-cache")) runner = undefined;
  else if (arch === process.arch) runner = [node];
  else if (arch === "arm64") {
    const qemu = qemuAarch64();
    const sysroot = arm64Sysroot();
    if (qemu && sysroot) runner = [qemu, "-L", sysroot, node];
  }
  return { arch, node, runner };
}

/**
 * Runs one simple command through the loader with this node, as bin/extctl.cjs's build does, so
 * V8's cache for the bundle holds the functions that command compiled. Same binary, no flags:
 * V8 takes a cache only from the same version and flags.
 */
async function codeCache(
  runner: readonly string[],
  loader: string,
  bundlePath: string,
): Promise<string> {
  const cacheFile = `${bundlePath}.v8cache`;
  const root = await mkdtemp(path.join(os.tmpdir(), "extctl-sea-cache-"));
  try {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      EXTCTL_SEA_ASSETS: path.dirname(bundlePath),
      EXTCTL_WRITE_CODE_CACHE: cacheFile,
    };
    for (const name of Object.keys(env)) if (name.startsWith("NODE_")) delete env[name];
    const [program, ...args] = runner as [string, ...string[]];
    execFileSync(program, [...args, loader, "--root", root, "status"], { env, stdio: "ignore" });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return cacheFile;
}

/**
 * Runs `fn` with stderr lines matching `noise` dropped: LIEF, inside postject, warns about every
 * ELF note of node's that it cannot name, which is harmless and hides real messages.
 */
async function quietly<T>(noise: RegExp, fn: () => Promise<T>): Promise<T> {
  const write = process.stderr.write.bind(process.stderr);
  const warn = console.warn;
  process.stderr.write = (chunk: string | Uint8Array, ...rest: never[]) =>
    noise.test(String(chunk)) ? true : write(chunk, ...rest);
  console.warn = (...args: unknown[]) => {
    if (!noise.test(args.map(String).join(" "))) warn(...args);
  };
  try {
    return await fn();
  } finally {
    process.stderr.write = write;
    console.warn = warn;
  }
}

/** The bundled npm packages as [name, version] pairs, sorted (for the SBOM). */
async function bundledPackages(): Promise<Array<{ name: string; version: string; dir: string }>> {
  const found = new Map<string, { name: string; version: string; dir: string }>();
  for (const dir of bundledPackageDirs) {
    const pkg = JSON.parse(await readFile(path.join(REPO, dir, "package.json"), "utf8")) as {
      name: string;
      version: string;
    };
    found.set(`${pkg.name}@${pkg.version}`, { name: pkg.name, version: pkg.version, dir });
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Makes the one file for `argv`'s target; returns its path and what it carries. */
export async function packageSea(argv: readonly string[]): Promise<{
  file: string;
  arch: NodeArch;
  node: string;
  packages: Array<{ name: string; version: string; dir: string }>;
}> {
  const target = await targetOf(argv);
  const runtime = await pinnedRuntime();
  // The SEA blob is written by a node of the same version: the target's where it runs here (its
  // code cache is then the target's), else the pinned one for this machine.
  if (!isNodeArch(process.arch)) throw new Error(`no pinned node for ${process.arch}`);
  const blobWriter = target.arch === process.arch ? target.node : await fetchNode(process.arch);
  const out = packagePath(target.arch);
  const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as {
    version: string;
  };
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });

  // The npm packages bin/extctl.cjs's bundle leaves outside are assets of their own here, which
  // the loader compiles when first required: a command that needs none of them (most of the
  // simple ones) reads and compiles ~0.8 MB instead of ~2.3 MB. Each package bundle leaves the
  // others outside too, so that pkijs and our code share one asn1js.
  const packaged = await externalPackages();
  const worker = await bundle({ entry: path.join(SRC, "domain/trust/verity-worker.ts") });
  const cli = await bundle(
    { entry: path.join(SRC, "cli/sea-main.ts") },
    {
      define: {
        EXTCTL_BUNDLED_VERSION: JSON.stringify(pkg.version),
        EXTCTL_BUNDLED_VERITY_WORKER: JSON.stringify(worker),
      },
      external: packaged,
    },
  );
  const packages: Record<string, string> = {};
  for (const name of packaged)
    packages[name] = await bundle(
      { stdin: `module.exports = require(${JSON.stringify(name)});` },
      { external: packaged.filter((other) => other !== name) },
    );
  const stray = [worker, cli, ...Object.values(packages)].flatMap((s) =>
    strayRequires(s, packaged),
  );
  if (stray.length)
    throw new Error(`the bundle still requires packages from disk: ${stray.join(", ")}`);
  // The loader decodes the bundle as latin1 (no UTF-8 decoding of megabytes on every command):
  // esbuild escapes non-ASCII characters by default, and this keeps it so.
  const wide = /[^\0-\x7f]/.exec(cli);
  if (wide) throw new Error(`the CLI bundle has a non-ASCII character at ${wide.index}`);
  const assets: Record<string, string> = {};
  const asset = async (name: string, contents: string): Promise<string> => {
    const file = path.join(WORK, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, contents);
    return (assets[name] = file);
  };
  const bundlePath = await asset("extctl.cjs", cli);
  for (const [name, source] of Object.entries(packages)) await asset(`npm/${name}.cjs`, source);
  await asset("npm.json", JSON.stringify(packaged));
  // `--version` prints this without compiling the bundle (the loader adds the runtime).
  await asset("version", pkg.version);
  await asset("arch", RELEASE_ARCH[target.arch]);
  const loader = path.join(REPO, "scripts/sea-loader.cjs");
  if (target.runner) {
    assets["extctl.cjs.v8cache"] = await codeCache(target.runner, loader, bundlePath);
    // The same run wrote a cache beside each npm bundle (sea-loader.cjs).
    for (const name of Object.keys(packages)) {
      const cache = path.join(WORK, `npm/${name}.cjs.v8cache`);
      if (existsSync(cache)) assets[`npm/${name}.cjs.v8cache`] = cache;
    }
  } else
    process.stderr.write(
      `note: no V8 code cache for linux-${target.arch}${argv.includes("--no-code-cache") ? "" : " (no qemu-aarch64-static or no sysroot: bash scripts/arm64-sysroot.sh)"}\n`,
    );

  const blob = path.join(WORK, "extctl.blob");
  const config = path.join(WORK, "sea-config.json");
  await writeFile(
    config,
    JSON.stringify({
      main: loader,
      output: blob,
      disableExperimentalSEAWarning: true,
      // No options from NODE_OPTIONS, none from OPENSSL_CONF (an OpenSSL configuration can load
      // a provider module, native code); /dev/null is an empty configuration.
      execArgvExtension: "none",
      execArgv: ["--openssl-config=/dev/null"],
      // The loader's own cache (the bundle's is the asset above): V8's from the target's node,
      // so only where it runs here. It also keeps the loader out of NODE_COMPILE_CACHE's
      // directory, which a compiled main script is written to before the loader can act.
      useCodeCache: target.runner !== undefined,
      assets,
    }),
  );
  const [writer, ...writerArgs] = target.runner ?? [blobWriter];
  execFileSync(writer as string, [...writerArgs, "--experimental-sea-config", config], {
    stdio: "ignore",
  });

  const binary = `${out}.tmp`;
  await copyFile(target.node, binary);
  await chmod(binary, 0o755);
  // The symbol table (12 MiB) is for debuggers; .dynsym, which addons link against, stays.
  try {
    const strip = target.arch === process.arch ? "strip" : "aarch64-linux-gnu-strip";
    execFileSync(strip, ["--strip-all", binary], { stdio: "inherit" });
  } catch {
    // No strip, or one that does not know the binary's architecture.
    process.stderr.write(`note: not stripped; ${path.basename(out)} keeps node's symbol table\n`);
  }
  // postject ships no types; its API is this one function.
  const { inject } = createRequire(import.meta.url)("postject") as {
    inject: (
      file: string,
      name: string,
      data: Buffer,
      o: { sentinelFuse: string },
    ) => Promise<void>;
  };
  const blobData = await readFile(blob);
  await quietly(/Can't find string offset for section name/, () =>
    inject(binary, "NODE_SEA_BLOB", blobData, { sentinelFuse: SEA_FUSE }),
  );
  await copyFile(binary, out);
  await rm(binary, { force: true });
  await chmod(out, 0o755);
  await rm(WORK, { recursive: true, force: true });
  const size = (await stat(out)).size;
  process.stdout.write(
    `wrote ${path.relative(REPO, out)} (${(size / 2 ** 20).toFixed(1)} MiB, Node.js v${runtime.version}, linux-${RELEASE_ARCH[target.arch]}; needs no Node.js where it runs)\n`,
  );
  return {
    file: out,
    arch: target.arch,
    node: runtime.version,
    packages: await bundledPackages(),
  };
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url)
  await packageSea(process.argv.slice(2));
