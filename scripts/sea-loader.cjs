// The main script of dist/extctl (scripts/package-sea.ts): compiles the CLI bundle the program
// carries as an asset, with the V8 code cache the build made by running one command. Node's own
// SEA code cache holds only what compiles before anything runs; this one also holds the
// functions a command compiled, as bin/extctl.cjs's does. A cache V8 rejects is compiled anew.
// The npm packages the CLI loads on demand are assets of their own (npm/NAME.cjs), compiled when
// first required, as bin/extctl.cjs's bundle finds them in node_modules.
//
// It also keeps the environment from configuring Node: NODE_OPTIONS and OPENSSL_CONF are ignored
// by the blob's settings (package-sea.ts), and when any other of Node's variables is set (NODE_*
// but NODE_EXTRA_CA_CERTS, which extctl reads itself as an extra CA file, and UV_THREADPOOL_SIZE,
// UV_USE_IO_URING) the program replaces itself by a run of the same file without them, before
// any of its code runs: what Node read from them at start-up (NODE_V8_COVERAGE, NODE_DEBUG,
// NODE_CHANNEL_FD, NODE_COMPILE_CACHE, ...) goes with the replaced process.
"use strict";
const fs = require("node:fs");
const sea = require("node:sea");

/** Node's variables, as named in its documentation, that the one file does not take. */
function nodeVariable(name) {
  return (
    (name.startsWith("NODE_") && name !== "NODE_EXTRA_CA_CERTS") ||
    name === "UV_THREADPOOL_SIZE" ||
    name === "UV_USE_IO_URING"
  );
}

if (sea.isSea()) {
  const names = Object.keys(process.env).filter(nodeVariable);
  if (names.length) {
    const env = { ...process.env };
    for (const name of names) delete env[name];
    // Coverage started by NODE_V8_COVERAGE would be written out as the process is replaced.
    if (names.includes("NODE_V8_COVERAGE")) require("node:v8").stopCoverage();
    process.execve(process.execPath, [process.argv0, ...process.argv.slice(2)], env);
  }
}

// The build runs this same file with plain node to write the cache: the assets are files in
// EXTCTL_SEA_ASSETS then, and the cache goes to EXTCTL_WRITE_CODE_CACHE.
const building = !sea.isSea();

/** An asset's bytes as text; all are ASCII (package-sea.ts checks the CLI bundle's). */
function assetText(name) {
  // latin1 skips UTF-8 decoding of a megabyte; the npm bundles may hold UTF-8. The build decodes
  // the same way, or V8 would refuse the code caches it writes (their source would differ).
  const encoding = name === "extctl.cjs" ? "latin1" : "utf8";
  if (building)
    return fs.readFileSync(
      require("node:path").join(process.env.EXTCTL_SEA_ASSETS, name),
      encoding,
    );
  return Buffer.from(sea.getAsset(name)).toString(encoding);
}

function compile(name, cachedData) {
  const vm = require("node:vm");
  return new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${assetText(name)}\n})`,
    { filename: name, ...(cachedData ? { cachedData } : {}) },
  );
}

function evaluate(script, name, module_ = { exports: {} }) {
  script.runInThisContext()(module_.exports, requireBundled, module_, name, "/");
  return module_;
}

const packaged = new Set(JSON.parse(assetText("npm.json")));
const packages = new Map();

/** Node's require, but the packaged npm names come from their assets, each evaluated once. */
function requireBundled(id) {
  if (!packaged.has(id)) return require(id);
  let module_ = packages.get(id);
  if (module_ === undefined) {
    // Registered before it runs, so that a cycle between packages sees its partial exports.
    module_ = { exports: {} };
    packages.set(id, module_);
    const name = `npm/${id}.cjs`;
    const script = compile(name, cacheOf(`${name}.v8cache`));
    scripts.set(name, script);
    evaluate(script, name, module_);
  }
  return module_.exports;
}

/** The compiled npm bundles, by asset name: the build writes a cache for each. */
const scripts = new Map();

/** A code cache asset of the one file, or undefined (none in this build, or building). */
function cacheOf(name) {
  if (building) return undefined;
  try {
    return new Uint8Array(sea.getAsset(name));
  } catch {
    return undefined;
  }
}

function run() {
  const script = compile("extctl.cjs", cacheOf("extctl.cjs.v8cache"));
  evaluate(script, "extctl.cjs");
  if (building && process.env.EXTCTL_WRITE_CODE_CACHE) {
    process.once("exit", () => {
      fs.writeFileSync(process.env.EXTCTL_WRITE_CODE_CACHE, script.createCachedData());
      // Every npm bundle too, loaded now if the command did not (pkijs and asn1js, ~1.3 MB,
      // are what `boot` and `verify` compile on every run): on the sysinit path of a slow
      // machine that compile is most of extctl's start-up.
      for (const id of packaged) {
        try {
          requireBundled(id);
        } catch {
          // One that cannot load here gets no cache; it compiles when used, as before.
        }
      }
      for (const [name, compiled] of scripts)
        fs.writeFileSync(
          require("node:path").join(process.env.EXTCTL_SEA_ASSETS, `${name}.v8cache`),
          compiled.createCachedData(),
        );
    });
  }
}

const first = process.argv[2];
if (!building && (first === "--version" || first === "-V")) {
  // The one command that needs nothing but the version (as src/cli/main.ts's versionLine()).
  const [version, arch] = ["version", "arch"].map((name) => sea.getAsset(name, "utf8"));
  fs.writeSync(1, `extctl ${version} (Node.js ${process.version}, linux-${arch})\n`);
} else {
  run();
}
