// Writes the JSON Schemas of the data commands' output (docs/json/NAME.schema.json) from
// src/cli/json-schemas.ts: `npm run schemas`. test/unit/cli/json-schemas.test.ts fails when the
// committed files differ from what this writes.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { JSON_SCHEMAS, schemaDocument, type JsonDocument } from "../src/cli/json-schemas.js";

const dir = join(import.meta.dirname, "..", "docs", "json");
mkdirSync(dir, { recursive: true, mode: 0o755 });
const names = Object.keys(JSON_SCHEMAS) as JsonDocument[];
for (const name of names)
  writeFileSync(
    join(dir, `${name}.schema.json`),
    JSON.stringify(schemaDocument(name), null, 2) + "\n",
    { mode: 0o644 },
  );
console.log(`wrote ${names.length} schemas to docs/json/`);
