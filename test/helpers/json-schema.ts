// A small JSON Schema (draft 2020-12) validator for the keywords docs/json/*.schema.json use:
// type (one or a list), enum, properties, required, additionalProperties (false or a schema) and
// items. A keyword it does not know is an error, so a schema cannot quietly check less than it says.
import type { JsonSchema } from "../../src/cli/json-schemas.js";

const KNOWN = new Set([
  "$schema",
  "$id",
  "title",
  "description",
  "type",
  "enum",
  "properties",
  "required",
  "additionalProperties",
  "items",
]);

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function typeMatches(actual: string, wanted: string): boolean {
  return actual === wanted || (wanted === "number" && actual === "integer");
}

/** Every way `value` breaks `schema`, each as "PATH: what"; empty when it validates. */
export function validate(value: unknown, schema: JsonSchema, at = "$"): string[] {
  for (const key of Object.keys(schema))
    if (!KNOWN.has(key)) throw new Error(`${at}: the validator does not know the keyword ${key}`);
  const errors: string[] = [];
  const actual = typeOf(value);
  if (schema["type"] !== undefined) {
    const types = (Array.isArray(schema["type"]) ? schema["type"] : [schema["type"]]) as string[];
    if (!types.some((t) => typeMatches(actual, t)))
      return [`${at}: ${actual} where ${types.join(" or ")} is wanted`];
  }
  if (Array.isArray(schema["enum"]) && !schema["enum"].some((e) => e === value))
    errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema["enum"])}`);
  if (actual === "object") {
    const object = value as Record<string, unknown>;
    const properties = (schema["properties"] ?? {}) as Record<string, JsonSchema>;
    for (const key of (schema["required"] ?? []) as string[])
      if (!(key in object)) errors.push(`${at}: the key ${key} is missing`);
    for (const [key, v] of Object.entries(object)) {
      const sub = properties[key];
      if (sub) errors.push(...validate(v, sub, `${at}.${key}`));
      else if (schema["additionalProperties"] === false)
        errors.push(`${at}: the key ${key} is not in the schema`);
      else if (typeof schema["additionalProperties"] === "object")
        errors.push(...validate(v, schema["additionalProperties"] as JsonSchema, `${at}.${key}`));
    }
  }
  if (actual === "array" && schema["items"] !== undefined)
    (value as unknown[]).forEach((v, i) =>
      errors.push(...validate(v, schema["items"] as JsonSchema, `${at}[${i}]`)),
    );
  return errors;
}
