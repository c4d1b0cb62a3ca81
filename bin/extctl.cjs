#!/usr/bin/env node
// The installed entry point: runs the CLI bundle that `npm run build` makes (dist/cli/), compiled
// from V8's code cache when the build left one, else the plain tsc output (dist/cli/main.js).
//
// CommonJS on purpose: an ES module entry costs ~12 ms of every command before any of ours runs
// (the ESM loader, and an ESM facade per Node built-in imported, which for node:fs reads every
// export and so loads all of node:stream).
"use strict";
const { existsSync, readFileSync, writeFileSync } = require("node:fs");
const path = require("node:path");

const dist = path.join(__dirname, "../dist/cli");
const bundle = path.join(dist, "extctl.bundle.cjs");
const cacheFile = `${bundle}.v8cache`;

/**
 * Compiles the bundle like require() would, but hands V8 the code cache the build wrote: parsing
 * ~1 MB of JavaScript is most of a simple command's own time, and Node 20 has no built-in
 * compile cache (module.enableCompileCache is Node 22+). A cache from another Node version or
 * flags is rejected by V8 and the source is compiled as usual.
 */
function loadBundle() {
  const vm = require("node:vm");
  const { createRequire } = require("node:module");
  // ASCII only (scripts/bundle-cli.ts checks): latin1 skips UTF-8 decoding of a megabyte.
  const source = readFileSync(bundle, "latin1");
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // no cache: compile from source
  }
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    { filename: bundle, ...(cachedData ? { cachedData } : {}) },
  );
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dist);
  return { main: module.exports.main, script };
}

async function run() {
  const first = process.argv[2];
  if (first === "--version" || first === "-V") {
    // The one command that needs nothing but package.json.
    const pkg = JSON.parse(readFileSync(path.join(dist, "../../package.json"), "utf8"));
    // As src/cli/main.ts's versionLine(): the version, the runtime and the platform.
    const arch = { x64: "amd64" }[process.arch] ?? process.arch;
    process.stdout.write(
      `extctl ${pkg.version} (Node.js ${process.version}, ${process.platform}-${arch})\n`,
    );
  } else if (existsSync(bundle)) {
    const { main, script } = loadBundle();
    process.exitCode = await main(process.argv);
    // The build runs one command with this set to store the cache, functions it compiled included.
    const writeTo = process.env.EXTCTL_WRITE_CODE_CACHE;
    if (writeTo) writeFileSync(writeTo, script.createCachedData());
  } else if (existsSync(path.join(dist, "main.js"))) {
    const { main } = await import("../dist/cli/main.js");
    process.exitCode = await main(process.argv);
  } else {
    // A checkout before `npm run build`: say what to do instead of Node's module-not-found trace.
    const checkout = path.resolve(dist, "../..");
    process.stderr.write(
      `extctl: this checkout is not built yet (there is no ${path.relative(checkout, bundle)})\n` +
        `  run \`npm ci && npm run build\` in ${checkout} first\n`,
    );
    process.exitCode = 1;
  }
}

void run();
