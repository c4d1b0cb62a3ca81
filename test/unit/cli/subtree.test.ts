// A run builds only the subtree of the command it names (cli/main.ts); this checks that the name
// is found past global options, and that whatever names no command gets the whole tree.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildProgram, commandNameIn } from "../../../src/cli/main.js";

const argv = (...args: string[]) => ["node", "extctl", ...args];
const topLevel = (...args: string[]) => buildProgram(argv(...args)).commands.map((c) => c.name());

test("the command name is the first argument that is neither a global option nor its value", () => {
  assert.equal(commandNameIn(argv("sysext", "list")), "sysext");
  assert.equal(commandNameIn(argv("--root", "/mnt", "-v", "status")), "status");
  assert.equal(commandNameIn(argv("--root=/mnt", "-q", "boot")), "boot");
  // --root takes the next argument, even one that looks like a command.
  assert.equal(commandNameIn(argv("--root", "sysext", "list")), "list");
  assert.equal(commandNameIn(argv("--", "verify")), "verify");
  assert.equal(commandNameIn(argv("--help")), undefined);
  assert.equal(commandNameIn(argv()), undefined);
});

test("a run that names a command builds that command alone, with all its subcommands", () => {
  assert.deepEqual(topLevel("--root", "/mnt", "confext", "list"), ["confext"]);
  const full = buildProgram().commands.find((c) => c.name() === "sysext");
  const alone = buildProgram(argv("sysext", "list")).commands.find((c) => c.name() === "sysext");
  assert.deepEqual(
    alone?.commands.map((c) => c.name()),
    full?.commands.map((c) => c.name()),
  );
});

test("help, completion and unknown or misspelt commands get the whole tree", () => {
  const everything = buildProgram().commands.map((c) => c.name());
  assert.ok(everything.length > 10 && everything.includes("completion"));
  for (const args of [["--help"], [], ["completion", "bash"], ["help", "sysext"], ["sysxt"]])
    assert.deepEqual(topLevel(...args), everything, args.join(" "));
});
