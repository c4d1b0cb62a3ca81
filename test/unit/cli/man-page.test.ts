// The man pages in docs/man/ are what scripts/man.ts writes from the command tree, and they say
// what --help says: a flag added to a command without `npm run man` fails here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Help, type Command } from "commander";
import { buildProgram } from "../../../src/cli/main.js";
import { manPages } from "../../../src/cli/man-page.js";

const dir = join(import.meta.dirname, "..", "..", "..", "docs", "man");
const pages = manPages(buildProgram());

test("docs/man holds exactly the pages the command tree makes (run `npm run man` after changing a command)", () => {
  const committed = readdirSync(dir)
    .filter((f) => f.endsWith(".8"))
    .sort();
  assert.deepEqual(committed, pages.map((p) => p.file).sort());
  for (const page of pages)
    assert.equal(readFileSync(join(dir, page.file), "utf8"), page.text, `${page.file} drifted`);
});

test("extctl(8) has the sections a man page is expected to have", () => {
  const main = pages.find((p) => p.file === "extctl.8")?.text ?? "";
  const sections = [...main.matchAll(/^\.SH "?([A-Z ]+)"?$/gm)].map((m) => m[1]);
  assert.deepEqual(sections, [
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "COMMANDS",
    "OPTIONS",
    "EXIT STATUS",
    "ENVIRONMENT",
    "FILES",
    "SEE ALSO",
  ]);
});

test("every option of every command's --help is on its group's page", () => {
  const program = buildProgram();
  const help = new Help();
  const unroff = (t: string) => t.replace(/\\-/g, "-").replace(/\\e/g, "\\");
  const walk = (command: Command, page: string): void => {
    const text = unroff(pages.find((p) => p.file === page)?.text ?? "");
    for (const option of help.visibleOptions(command)) {
      if (option.long === "--help") continue;
      assert.ok(
        text.includes(help.optionTerm(option)),
        `${page} lacks ${help.optionTerm(option)} of ${command.name()}`,
      );
    }
    for (const sub of command.commands) walk(sub, page);
  };
  for (const command of program.commands) {
    if ((command as Command & { _hidden?: boolean })._hidden) continue;
    const group = command.name() === "confext" ? "sysext" : command.name();
    walk(command, `extctl-${group}.8`);
  }
});

test("text that reads as a roff request or escape is printed literally", () => {
  const program = buildProgram();
  program.command("zz-test").description(".SH fake section \\fBbold");
  const page = manPages(program).find((p) => p.file === "extctl-zz-test.8")?.text ?? "";
  assert.ok(page.includes("\\&.SH fake section \\efBbold"), page);
  assert.ok(!/^\.SH fake/m.test(page));
});
