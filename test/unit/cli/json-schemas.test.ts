// The JSON documents' schemas: docs/json/ holds what src/cli/json-schemas.ts describes (npm run
// schemas), withEveryKey fills what a result leaves out with null, and the test validator used
// against real output in test/e2e/json-output.test.ts does reject what it should.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  JSON_SCHEMAS,
  schemaDocument,
  withEveryKey,
  type JsonDocument,
} from "../../../src/cli/json-schemas.js";
import { validate } from "../../helpers/json-schema.js";

const dir = join(import.meta.dirname, "..", "..", "..", "docs", "json");

test("docs/json/*.schema.json are what npm run schemas writes", () => {
  for (const name of Object.keys(JSON_SCHEMAS) as JsonDocument[]) {
    const file = join(dir, `${name}.schema.json`);
    assert.equal(
      readFileSync(file, "utf8"),
      JSON.stringify(schemaDocument(name), null, 2) + "\n",
      `${file} drifted: run npm run schemas`,
    );
    assert.equal(schemaDocument(name)["$schema"], "https://json-schema.org/draft/2020-12/schema");
  }
});

test("every key a schema names is present, null when the result leaves it out", () => {
  const listed = withEveryKey(
    { kind: "sysext", images: [{ name: "a", path: "/s/a.raw", present: true, profiles: [] }] },
    JSON_SCHEMAS.list,
  ) as { profile: unknown; images: Record<string, unknown>[] };
  assert.equal(listed.profile, null);
  const image = listed.images[0] ?? {};
  for (const key of ["version", "format", "signed", "compatible", "reason", "corrupted", "trust"])
    assert.ok(key in image && image[key] === null, key);
  // Nested objects get theirs too; values the result has stay as they are.
  const withTrust = withEveryKey(
    { kind: "sysext", images: [{ name: "a", trust: { outcome: "unsigned", trusted: false } }] },
    JSON_SCHEMAS.list,
  ) as { images: { name: string; trust: Record<string, unknown> }[] };
  assert.equal(withTrust.images[0]?.name, "a");
  assert.deepEqual(withTrust.images[0]?.trust, {
    outcome: "unsigned",
    trusted: false,
    signer: null,
    message: null,
  });
});

test("the schema's key order is the document's, and keys it does not name survive", () => {
  const out = withEveryKey(
    { exitCode: 3, items: [], kind: "sysext", extra: 1 },
    JSON_SCHEMAS.upgrade,
  );
  assert.deepEqual(Object.keys(out as object), ["kind", "items", "exitCode", "extra"]);
  assert.deepEqual(validate(out, JSON_SCHEMAS.upgrade), ["$: the key extra is not in the schema"]);
});

test("the validator rejects a wrong type, a missing key, a value outside an enum and a non-null unknown", () => {
  const good = { kind: "sysext", items: [], exitCode: 3 };
  assert.deepEqual(validate(good, JSON_SCHEMAS.upgrade), []);
  assert.match(
    validate({ ...good, exitCode: "3" }, JSON_SCHEMAS.upgrade).join(),
    /\$\.exitCode: string/,
  );
  assert.match(
    validate({ kind: "sysext", items: [] }, JSON_SCHEMAS.upgrade).join(),
    /exitCode is missing/,
  );
  assert.match(validate({ ...good, kind: "portable" }, JSON_SCHEMAS.upgrade).join(), /not one of/);
  const item = { name: "a", action: "upgraded", reason: "", from: null, to: null };
  assert.match(
    validate({ ...good, items: [item] }, JSON_SCHEMAS.upgrade).join("\n"),
    /\$\.items\[0\]: the key reference is missing/,
  );
  assert.match(
    validate({ ...good, items: [{ ...item, action: null }] }, JSON_SCHEMAS.upgrade).join("\n"),
    /\$\.items\[0\]\.action: null where string is wanted/,
  );
  assert.match(validate(1.5, { type: "integer" }).join(), /number where integer/);
  assert.throws(
    () => validate(1, { type: "integer", minimum: 0 }),
    /does not know the keyword minimum/,
  );
});
