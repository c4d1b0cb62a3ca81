// Imports point down: util < domain < operations < cli (ARCHITECTURE.md's layers). Every relative
// import in src, static or dynamic (`await import(...)`, which lazy loading uses everywhere), is
// checked; a module may import its own layer or any below it, never one above.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src");

/** The layer of each top-level directory of src; `types` holds declarations only. */
const RANK: Record<string, number> = { util: 0, types: 0, domain: 1, operations: 2, cli: 3 };

/** Relative specifiers of `import … from`, `export … from`, `import "…"` and `import("…")`. */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (entry.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

function layerOf(file: string): string | undefined {
  const top = path.relative(SRC, file).split(path.sep);
  return top.length > 1 ? top[0] : undefined; // src/index.ts is the library's front door
}

/** Every upward import in `files` as "from -> to". */
async function upwardImports(files: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    if (from === undefined) continue;
    const text = await readFile(file, "utf8");
    for (const m of text.matchAll(IMPORT)) {
      const target = path.resolve(path.dirname(file), m[1] as string);
      const to = layerOf(target);
      if (to === undefined) continue;
      const fromRank = RANK[from];
      const toRank = RANK[to];
      assert.ok(fromRank !== undefined, `src/${from} is not a known layer; add it to RANK`);
      assert.ok(toRank !== undefined, `src/${to} is not a known layer; add it to RANK`);
      if (toRank > fromRank)
        found.push(`${path.relative(SRC, file)} -> ${path.relative(SRC, target)}`);
    }
  }
  return found;
}

test("no module in src imports from a layer above its own", async () => {
  const files = await sourceFiles(SRC);
  assert.ok(files.length > 100, "the walk found the sources");
  assert.deepEqual(await upwardImports(files), []);
});

test("the check sees static and dynamic imports alike", async () => {
  // The finder must catch the shape of import that once slipped through (a lazy one in the domain).
  const text = [
    'import type { X } from "../../operations/a.js";',
    'const { y } = await import("../../operations/b.js");',
    'export { z } from "../../cli/c.js";',
    'import "../../operations/d.js";',
  ].join("\n");
  const specs = [...text.matchAll(IMPORT)].map((m) => m[1]);
  assert.deepEqual(specs, [
    "../../operations/a.js",
    "../../operations/b.js",
    "../../cli/c.js",
    "../../operations/d.js",
  ]);
});
