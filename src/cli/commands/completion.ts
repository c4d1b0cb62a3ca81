// `extctl completion bash|zsh|fish`: prints a completion script made from this program's command
// tree; the hidden `extctl __complete images KIND [--PROFILE]` gives it installed image names.
import { Argument, type Command } from "commander";
import { completionTree } from "../completion-tree.js";
import { SHELLS, completionScript, type Shell } from "../completion-scripts.js";
import { addFlags, boolFlag, contextFor, defined, flagsOf, type FlagSpec } from "../options.js";
import { print } from "../render.js";
import { writeStdout } from "../../util/stdio.js";

function programOf(command: Command): Command {
  let top = command;
  while (top.parent) top = top.parent;
  return top;
}

// Undescribed: the command is hidden, and these mirror the profile flags of list.
const COMPLETE_IMAGES_FLAGS = {
  active: boolFlag("--active"),
  passive: boolFlag("--passive"),
  recovery: boolFlag("--recovery"),
  common: boolFlag("--common"),
} as const satisfies FlagSpec;

export function registerCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script (source <(extctl completion bash))")
    .addArgument(new Argument("<shell>", "the shell to complete in").choices(SHELLS))
    .action((shell: Shell, _opts: unknown, command: Command) => {
      writeStdout(completionScript(shell, completionTree(programOf(command))));
    });

  // What the scripts call while completing: quiet, and empty rather than an error.
  const hidden = program.command("__complete", { hidden: true });
  addFlags(hidden.command("images").argument("<kind>"), COMPLETE_IMAGES_FLAGS).action(
    async (kind: string, _opts: unknown, command: Command) => {
      const opts = flagsOf(command, COMPLETE_IMAGES_FLAGS);
      if (kind !== "sysext" && kind !== "confext") return;
      const profile = (["active", "passive", "recovery", "common"] as const).find((p) => opts[p]);
      const { list } = await import("../../operations/list.js");
      try {
        const result = await list(contextFor(command), { kind, ...defined({ profile }) });
        // The short name (what Kairos users type); enable and the others accept it.
        // One name a line: a name with a line break or another control character (placed in the
        // store by hand: extctl refuses them) could not be one line, so it is left out.
        const names = result.images
          .filter((i) => i.present && !/\p{Cc}|\p{Zl}|\p{Zp}/u.test(i.name))
          .map((i) => i.name.replace(/(\.(sysext|confext))?\.raw$/, ""));
        if (names.length) print(names.join("\n"));
      } catch {
        // No store, no permission: nothing to offer.
      }
    },
  );
}
