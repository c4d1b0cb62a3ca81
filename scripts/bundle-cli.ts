// Build step after tsc: bundles the CLI (src/cli/main.ts and everything of ours it imports) into
// one CommonJS file, dist/cli/extctl.bundle.cjs, plus V8's code cache for it; dist/ stays the library.
//
// Why: Node's ESM loader pays a resolve, realpath, read and compile per module, and a simple
// command loaded ~60 of them. One file, compiled from a code cache (bin/extctl.cjs), costs little
// more than `node -e 0`. Without code splitting esbuild turns our `await import("./x.js")` into
// code in the same file that is evaluated only when first imported, and in CommonJS output the
// Node built-ins a module needs are required then too (ESM output would hoist them all to the
// top: crypto, tls, zlib for every command). npm packages stay outside (except commander, which
// every command needs, and semver): the heavy ones load only when used, and the start-up test sees whether.
import { build, type Plugin } from "esbuild";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC = path.join(REPO, "src");
const DIST = path.join(REPO, "dist");
export const BUNDLE = path.join(DIST, "cli/extctl.bundle.cjs");

/**
 * A bundled module would see the bundle's URL as import.meta.url; each module gets the URL of
 * its own tsc output instead, so relative lookups (package.json, the verity worker thread) find
 * the same files as in dist/.
 */
const ownImportMetaUrl: Plugin = {
  name: "own-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      if (!source.includes("import.meta.url")) return undefined;
      const compiled = path.join(DIST, path.relative(SRC, args.path)).replace(/\.ts$/, ".js");
      let rel = path.relative(path.dirname(BUNDLE), compiled).split(path.sep).join("/");
      if (!rel.startsWith(".")) rel = `./${rel}`;
      const url = `new URL(${JSON.stringify(rel)}, require("node:url").pathToFileURL(__filename)).href`;
      return { contents: source.replaceAll("import.meta.url", `(${url})`), loader: "ts" };
    });
  },
};

/**
 * npm packages inside the bundle: commander, which every command needs, and semver, small but
 * spread over ~50 files that cost ~15 ms of resolving and reading for upgrade and install.
 */
const BUNDLED = new Set(["commander", "semver"]);

/**
 * commander requires node:child_process at load time, only to spawn executable subcommands,
 * which extctl has none of; loading it costs ~4.5 ms of every command (more in the one-file build,
 * where nothing else loads node:stream or node:net first). The require becomes a
 * getter that loads it on first use.
 */
export const lazyCommanderChildProcess: Plugin = {
  name: "lazy-commander-child-process",
  setup(b) {
    b.onLoad({ filter: /commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const eager = "const childProcess = require('node:child_process');";
      if (!source.includes(eager))
        throw new Error(`${args.path}: commander no longer has ${eager}`);
      const lazy =
        "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
      return { contents: source.replace(eager, lazy), loader: "js" };
    });
  },
};

/** The npm packages the CLI bundle leaves outside: every dependency but BUNDLED's. */
export async function externalPackages(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  return Object.keys(pkg.dependencies ?? {}).filter((name) => !BUNDLED.has(name));
}

async function main(): Promise<void> {
  const external = await externalPackages();
  await build({
    entryPoints: [path.join(SRC, "cli/main.ts")],
    outfile: BUNDLE,
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    external,
    plugins: [ownImportMetaUrl, lazyCommanderChildProcess],
    // import() of an npm package becomes a require() when it runs (still lazy): bin/extctl.cjs
    // compiles the bundle with vm.Script, and on Node 20 a script restored from the code cache
    // has no dynamic import() callback. Node >= 20.19 can require() the ESM-only ones (pkijs).
    supported: { "dynamic-import": false },
    logOverride: { "empty-import-meta": "silent" },
    sourcemap: true,
    sourcesContent: false,
    legalComments: "none",
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: "warning",
  });
  // bin/extctl.cjs reads the bundle as latin1 (no UTF-8 decoding of a megabyte on every command):
  // esbuild escapes non-ASCII characters by default, and this keeps it so.
  const bytes = await readFile(BUNDLE);
  const wide = bytes.findIndex((b) => b > 0x7f);
  if (wide >= 0) throw new Error(`${BUNDLE} has a non-ASCII byte at offset ${wide}`);
  await writeCodeCache();
}

/**
 * Runs one simple command through bin/extctl.cjs so that it stores V8's code cache for the bundle
 * (see bin/extctl.cjs), with the functions that command compiled. Same node binary, no extra
 * flags: V8 accepts a cache only from the same version and flags.
 */
async function writeCodeCache(): Promise<void> {
  const cacheFile = `${BUNDLE}.v8cache`;
  await rm(cacheFile, { force: true });
  const root = await mkdtemp(path.join(os.tmpdir(), "extctl-code-cache-"));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, EXTCTL_WRITE_CODE_CACHE: cacheFile };
    delete env.NODE_OPTIONS;
    execFileSync(process.execPath, [path.join(REPO, "bin/extctl.cjs"), "--root", root, "status"], {
      env,
      stdio: "ignore",
    });
  } catch (e) {
    // The CLI works without the cache, only slower to start.
    process.stderr.write(`warning: no V8 code cache for the CLI bundle: ${(e as Error).message}\n`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) await main();
