// `extctl sysext|confext VERB`: the kairos-agent grammar.
import type { Command } from "commander";

export function registerExtensionCommands(program: Command): void {
  for (const kind of ["sysext", "confext"] as const) {
    program
      .command(kind)
      .description(`manage ${kind === "sysext" ? "system" : "configuration"} extensions`);
  }
}
