// A run builds only what it names (cli/main.ts): the command's subtree, and for sysext and
// confext only the subcommand it runs. This checks that the names are found past global options,
// and that whatever names nothing known (help, a typo) gets the whole tree, so help and
// suggestions stay complete.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Command } from "commander";
import { buildProgram, commandPathIn } from "../../../src/cli/main.js";
import { EXTENSION_SUBCOMMANDS } from "../../../src/cli/commands/extension.js";

const argv = (...args: string[]) => ["node", "extctl", ...args];
const topLevel = (...args: string[]) => buildProgram(argv(...args)).commands.map((c) => c.name());
const subcommands = (program: Command, name: string) =>
  program.commands.find((c) => c.name() === name)?.commands.map((c) => c.name()) ?? [];

test("the command is the first argument that is neither a global option nor its value", () => {
  assert.deepEqual(commandPathIn(argv("sysext", "list")), ["sysext", "list"]);
  assert.deepEqual(commandPathIn(argv("--root", "/mnt", "-v", "status")), ["status"]);
  assert.deepEqual(commandPathIn(argv("--root=/mnt", "-q", "boot", "--policy", "x")), ["boot"]);
  // --root takes the next argument, even one that looks like a command.
  assert.deepEqual(commandPathIn(argv("--root", "sysext", "sysext", "list")), ["sysext", "list"]);
  assert.deepEqual(commandPathIn(argv("--", "verify", "a.raw")), ["verify", "a.raw"]);
  assert.deepEqual(commandPathIn(argv("sysext", "--help")), ["sysext"]);
  assert.deepEqual(commandPathIn(argv("--help")), []);
  assert.deepEqual(commandPathIn(argv()), []);
});

test("a run that names a command builds that command alone; sysext and confext only the subcommand", () => {
  assert.deepEqual(topLevel("--root", "/mnt", "confext", "list"), ["confext"]);
  assert.deepEqual(subcommands(buildProgram(argv("sysext", "list", "--json")), "sysext"), ["list"]);
  assert.deepEqual(subcommands(buildProgram(argv("confext", "download", "x")), "confext"), [
    "install",
  ]);
  assert.deepEqual(subcommands(buildProgram(argv("sysext", "upgrade")), "sysext"), ["upgrade"]);
  const status = buildProgram(argv("status")).commands.map((c) => c.name());
  assert.deepEqual(status, ["status"]);
});

test("every sysext subcommand and alias is one EXTENSION_SUBCOMMANDS knows, and the other way round", () => {
  const sysext = buildProgram().commands.find((c) => c.name() === "sysext");
  const names = (sysext?.commands ?? []).flatMap((c) => [c.name(), ...c.aliases()]);
  assert.deepEqual([...names].sort(), [...EXTENSION_SUBCOMMANDS].sort());
});

test("help, completion and unknown or misspelt commands get the whole tree", () => {
  const full = buildProgram();
  const everything = full.commands.map((c) => c.name());
  assert.ok(everything.length > 10 && everything.includes("completion"));
  for (const args of [["--help"], [], ["completion", "bash"], ["help", "sysext"], ["sysxt"]])
    assert.deepEqual(topLevel(...args), everything, args.join(" "));
  const allOfSysext = subcommands(full, "sysext");
  for (const args of [
    ["sysext"],
    ["sysext", "--help"],
    ["sysext", "help", "list"],
    ["sysext", "lst"],
  ])
    assert.deepEqual(
      subcommands(buildProgram(argv(...args)), "sysext"),
      allOfSysext,
      args.join(" "),
    );
});
