// The typed option specs of cli/options.ts: what a command's action reads is what commander
// parsed, with the type the spec claims, and a spec that could not be read is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import {
  defined,
  addFlags,
  boolFlag,
  choiceFlag,
  flagPair,
  flagsOf,
  listFlag,
  negatedFlag,
  numberFlag,
  readFlags,
  refreshFlag,
  textFlag,
  type FlagSpec,
} from "../../../src/cli/options.js";

const SPEC = {
  json: boolFlag("--json", "as JSON"),
  verity: negatedFlag("--no-verity", "no verity"),
  trusted: flagPair(["--trusted", "trusted"], ["--no-trusted", "not trusted"]),
  name: textFlag("--name <file>", "a name"),
  root: textFlag("--root <dir>", "a root", "/"),
  caCert: listFlag("--ca-cert <file>", "repeatable"),
  trust: listFlag("--trust <file>", "repeatable", []),
  keep: numberFlag("--keep <n>", "a number", (v) => Number(v)),
  layers: choiceFlag("--layers <which>", "a choice", ["last", "all"]),
  refresh: refreshFlag(),
} as const satisfies FlagSpec;

async function parsed(args: string[]) {
  const program = new Command("t").exitOverride().configureOutput({ writeErr: () => {} });
  let read: unknown;
  addFlags(program.command("run"), SPEC).action((_opts: unknown, command: Command) => {
    read = flagsOf(command, SPEC);
  });
  await program.parseAsync(["node", "t", "run", ...args]);
  return read;
}

test("an action reads commander's defaults when no flag is given", async () => {
  assert.deepEqual(await parsed([]), {
    json: undefined,
    verity: true,
    trusted: undefined,
    name: undefined,
    root: "/",
    caCert: undefined,
    trust: [],
    keep: undefined,
    layers: undefined,
    refresh: "auto",
  });
});

test("an action reads every kind of flag as parsed", async () => {
  assert.deepEqual(
    await parsed([
      "--json",
      "--no-verity",
      "--no-trusted",
      "--name=a.raw",
      "--root",
      "/r",
      "--ca-cert",
      "a.pem",
      "--ca-cert",
      "b.pem",
      "--trust",
      "c.pem",
      "--keep",
      "2",
      "--layers",
      "all",
      "--refresh",
      "none",
    ]),
    {
      json: true,
      verity: false,
      trusted: false,
      name: "a.raw",
      root: "/r",
      caCert: ["a.pem", "b.pem"],
      trust: ["c.pem"],
      keep: 2,
      layers: "all",
      refresh: "none",
    },
  );
});

test("a choice outside the list is commander's usage error", async () => {
  await assert.rejects(parsed(["--layers", "some"]), { code: "commander.invalidArgument" });
});

test("a spec key that is not commander's attribute name is refused when the command runs", async () => {
  const spec = { caCerts: listFlag("--ca-cert <file>", "x") };
  const program = new Command("t").exitOverride();
  addFlags(program.command("run"), spec).action((_opts: unknown, command: Command) => {
    flagsOf(command, spec);
  });
  await assert.rejects(
    program.parseAsync(["node", "t", "run", "--ca-cert", "a.pem"]),
    /extctl bug: run has no option read as caCerts/,
  );
});

test("a parsed value of another type than the spec claims is an internal error", () => {
  assert.throws(() => readFlags({ keep: "2" }, { keep: SPEC.keep }), /extctl bug: --keep/);
  assert.throws(() => readFlags({ layers: "some" }, { layers: SPEC.layers }), /--layers/);
  assert.throws(() => readFlags({ caCert: [1] }, { caCert: SPEC.caCert }), /--ca-cert/);
});

test("each command gets its own commander options from a shared spec", () => {
  const a = addFlags(new Command("a"), SPEC);
  const b = addFlags(new Command("b"), SPEC);
  assert.ok(a.options.every((o) => !b.options.includes(o)));
  assert.deepEqual(
    a.options.map((o) => o.flags),
    b.options.map((o) => o.flags),
  );
});

test("defined drops the flags that were not given and keeps false, 0 and empty values", () => {
  const timeout: number | undefined = undefined;
  const values = defined({ image: "a.raw", full: false, keep: 0, policy: "", timeout });
  assert.deepEqual(values, { image: "a.raw", full: false, keep: 0, policy: "" });
  assert.equal("timeout" in values, false);
  // What it returns is exact: a member that may be undefined is optional, never `key: undefined`.
  const exact: { image: string; timeout?: number } = values;
  assert.equal(exact.image, "a.raw");
});
