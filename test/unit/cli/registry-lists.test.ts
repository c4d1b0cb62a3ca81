// The lists people see (build's --format choices, completion, install's help, docs/commands.md) are the
// registries' lists, so adding a source scheme or a filesystem changes them all at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Command, Option } from "commander";
import { buildProgram } from "../../../src/cli/main.js";
import { allNodes, completionTree } from "../../../src/cli/completion-tree.js";
import { completionScript } from "../../../src/cli/completion-scripts.js";
import {
  DEFAULT_FORMAT,
  FORMATS,
  READABLE,
} from "../../../src/domain/image/filesystem-registry.js";
import { SCHEMES, schemeList } from "../../../src/domain/sources/source-registry.js";

const program = buildProgram();
const tree = completionTree(program);

function command(path: string): Command {
  let at: Command | undefined = program;
  for (const name of path.split(" ")) at = at?.commands.find((c) => c.name() === name);
  assert.ok(at, path);
  return at;
}

function option(path: string, flag: string): Option {
  const found = command(path).options.find((o) => o.long === flag);
  assert.ok(found, `${path} ${flag}`);
  return found;
}

test("build's --format offers the registry's formats, the registry's default first", () => {
  const format = option("build", "--format");
  assert.deepEqual(format.argChoices, [...FORMATS]);
  assert.equal(format.defaultValue, DEFAULT_FORMAT);
  for (const f of FORMATS) assert.ok(option("build", "--compress").description.includes(`${f} `));
});

test("completion offers the registry's formats for build --format, in every shell", () => {
  const build = allNodes(tree).find((n) => n.path.join(" ") === "build");
  const format = build?.options.find((o) => o.names.includes("--format"));
  assert.deepEqual(format?.choices, [...FORMATS]);
  // bash and zsh print candidates one per line (never a list the shell would expand); fish
  // takes them as one -a argument.
  for (const shell of ["bash", "zsh"] as const)
    assert.ok(
      completionScript(shell, tree).includes(
        `printf '%s\\n' ${FORMATS.map((f) => `'${f}'`).join(" ")}`,
      ),
      shell,
    );
  assert.ok(completionScript("fish", tree).includes(`-a '${FORMATS.join(" ")}'`), "fish");
});

test("install's help and the image arguments name the registries' schemes and readers", () => {
  for (const kind of ["sysext", "confext"])
    assert.ok(command(`${kind} install`).description().includes(`from ${schemeList()},`));
  for (const path of ["check", "inspect"])
    assert.ok(command(path).registeredArguments[0]?.description.includes(READABLE.join("/")), path);
});

test("the command reference (docs/commands.md) lists the registries' schemes and formats", () => {
  const readme = readFileSync(new URL("../../../docs/commands.md", import.meta.url), "utf8");
  const uris = SCHEMES.map((s) => `\`${s}:\``);
  const sentence = `${uris.slice(0, -1).join(", ")} or ${uris.at(-1)}`;
  assert.ok(readme.includes(`\`URI\` is ${sentence}.`), `docs/commands.md: URI is ${sentence}`);
  assert.ok(readme.includes(`\`--format ${FORMATS.join("\\|")}\``), "docs/commands.md: --format");
});
