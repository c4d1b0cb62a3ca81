// The main script of dist/extctl (scripts/package-sea.ts): compiles the CLI bundle the program
// carries as an asset, with the V8 code cache the build made by running one command. Node's own
// SEA code cache holds only what compiles before anything runs; this one also holds the
// functions a command compiled, as bin/extctl.js's does. A cache V8 rejects is compiled anew.
"use strict";
const fs = require("node:fs");
const sea = require("node:sea");
const vm = require("node:vm");

// The build runs this same file with plain node to write the cache (EXTCTL_WRITE_CODE_CACHE).
const building = !sea.isSea();
const source = building
  ? fs.readFileSync(process.env.EXTCTL_SEA_BUNDLE, "utf8")
  : sea.getAsset("extctl.cjs", "utf8");
let cachedData;
if (!building) {
  try {
    cachedData = new Uint8Array(sea.getAsset("extctl.cjs.v8cache"));
  } catch {
    // no cache in this build
  }
}
const script = new vm.Script(
  `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
  { filename: "extctl.cjs", ...(cachedData ? { cachedData } : {}) },
);
const module_ = { exports: {} };
script.runInThisContext()(module_.exports, require, module_, "extctl.cjs", "/");
if (building && process.env.EXTCTL_WRITE_CODE_CACHE) {
  process.once("exit", () =>
    fs.writeFileSync(process.env.EXTCTL_WRITE_CODE_CACHE, script.createCachedData()),
  );
}
