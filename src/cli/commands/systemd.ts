// `extctl systemd install [--uninstall]`: the units that run `extctl boot` before
// systemd-sysext/confext and, for systemd 254+, their image-policy drop-ins.
import type { Command } from "commander";
import { UsageError } from "../../util/errors.js";
import { contextFor } from "../options.js";
import { print, printJson } from "../render.js";

export function registerSystemdCommand(program: Command): void {
  const parent = program
    .command("systemd")
    .description("systemd integration for boot-time linking");
  parent
    .command("install")
    .description(
      "write extctl-boot.service (before systemd-sysext/confext) and, for systemd 254+, image-policy drop-ins",
    )
    .option("--uninstall", "remove exactly the files install wrote")
    .option("--systemd <version>", "the node's systemd version (default: detected under the root)")
    .option("--trusted", "write the trusted-boot (signed) image policy")
    .option("--no-trusted", "write the normal-boot (verity) image policy")
    .option("--extctl <path>", "the extctl the unit runs (default: this one, or /usr/bin/extctl)")
    .option("--json", "print the result as JSON")
    .action(async (opts, command: Command) => {
      let systemdVersion: number | undefined;
      if (opts.systemd !== undefined) {
        systemdVersion = Number(opts.systemd);
        if (!/^\d+$/.test(String(opts.systemd)))
          throw new UsageError(
            `--systemd ${String(opts.systemd)} is not a systemd version`,
            "give the major version, e.g. --systemd 255",
          );
      }
      const { systemdInstall } = await import("../../operations/systemd-install.js");
      const result = await systemdInstall(contextFor(command), {
        ...(opts.uninstall ? { uninstall: true } : {}),
        ...(systemdVersion === undefined ? {} : { systemdVersion }),
        ...(typeof opts.trusted === "boolean" ? { trusted: opts.trusted as boolean } : {}),
        ...(opts.extctl ? { extctlPath: opts.extctl as string } : {}),
      });
      if (opts.json) return printJson(result);
      const verb = result.action === "install" ? "wrote" : "removed";
      const lines = [
        ...result.changed.map((p) => `${verb} ${p}`),
        ...result.unchanged.map(
          (p) => `${result.action === "install" ? "unchanged" : "kept"} ${p}`,
        ),
        ...result.notes.map((n) => `note: ${n}`),
      ];
      print(lines.length ? lines.join("\n") : "nothing to do");
    });
}
