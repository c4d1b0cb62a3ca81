// Writes the man pages (docs/man/*.8) from the command tree: `npm run man`. The unit test
// test/unit/cli/man-page.test.ts fails when the committed pages differ from what this writes.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildProgram } from "../src/cli/main.js";
import { manPages } from "../src/cli/man-page.js";

const dir = join(import.meta.dirname, "..", "docs", "man");
mkdirSync(dir, { recursive: true, mode: 0o755 });
const pages = manPages(buildProgram());
for (const old of readdirSync(dir)) if (old.endsWith(".8")) rmSync(join(dir, old));
for (const page of pages) writeFileSync(join(dir, page.file), page.text, { mode: 0o644 });
console.log(`wrote ${pages.length} man pages to docs/man/`);
