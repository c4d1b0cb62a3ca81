// The command tree completion scripts are made from, read out of the real program.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildProgram } from "../../../src/cli/main.js";
import { allNodes, completionTree } from "../../../src/cli/completion-tree.js";
import { completionScript } from "../../../src/cli/completion-scripts.js";

const tree = completionTree(buildProgram());
const at = (path: string) => allNodes(tree).find((n) => n.path.join(" ") === path);

test("the tree has every command, aliases, choices, and no hidden command", () => {
  assert.ok(at("sysext install")?.aliases.includes("download"));
  assert.deepEqual(at("completion")?.argumentChoices, [["bash", "zsh", "fish"]]);
  assert.deepEqual(at("build")?.argumentChoices[0], ["sysext", "confext"]);
  const refresh = at("sysext enable")?.options.find((o) => o.names.includes("--refresh"));
  assert.deepEqual(refresh?.choices, ["auto", "systemctl", "sysext", "none"]);
  assert.equal(at("__complete"), undefined);
  assert.ok(at("")?.options.some((o) => o.names.includes("--root") && o.takesValue));
});

test("enable, disable, remove, upgrade, rollback and versions of each kind take an installed image's name", () => {
  const withImages = allNodes(tree)
    .filter((n) => n.imageArgument)
    .map((n) => `${n.path.join(" ")}:${n.imageArgument?.kind}`);
  assert.deepEqual(withImages.sort(), [
    "confext disable:confext",
    "confext enable:confext",
    "confext remove:confext",
    "confext rollback:confext",
    "confext upgrade:confext",
    "confext versions:confext",
    "sysext disable:sysext",
    "sysext enable:sysext",
    "sysext remove:sysext",
    "sysext rollback:sysext",
    "sysext upgrade:sysext",
    "sysext versions:sysext",
  ]);
});

test("each shell's script names the program's commands", () => {
  for (const shell of ["bash", "zsh", "fish"] as const) {
    const script = completionScript(shell, tree);
    for (const word of ["sysext", "confext", "completion", "--policy", "__complete images"])
      assert.ok(script.includes(word), `${shell}: ${word}`);
  }
});
