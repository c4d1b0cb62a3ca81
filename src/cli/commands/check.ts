// `extctl check IMAGE`: would systemd merge this image on --root? Every rule with pass or fail;
// exit 0 when it would merge, 1 when not.
import type { Command } from "commander";
import { ExtctlError } from "../../util/errors.js";
import { EXTENSION_KINDS } from "../../domain/store/layout.js";
import {
  addFlags,
  contextFor,
  defined,
  flagsOf,
  jsonFlag,
  textFlag,
  type FlagSpec,
  TABLE_FLAGS,
} from "../options.js";
import { print, printJsonAs, renderTable, setTableLayout } from "../render.js";
import { READABLE } from "../../domain/image/filesystem-registry.js";

const CHECK_FLAGS = {
  systemd: textFlag(
    "--systemd <version>",
    "apply this systemd version's rules (default: the root's systemd, else the newest)",
  ),
  kind: textFlag("--kind <kind>", "sysext or confext (default: from the file name)"),
  json: jsonFlag(),
  ...TABLE_FLAGS,
} as const satisfies FlagSpec;

export function registerCheckCommand(program: Command): void {
  addFlags(
    program
      .command("check")
      .description(
        "tell whether systemd-sysext/confext would merge an image on this root, rule by rule (exit 0 yes, 1 no)",
      )
      .argument("<image>", `the image file (.raw DDI or bare ${READABLE.join("/")})`),
    CHECK_FLAGS,
  ).action(async (image: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, CHECK_FLAGS);
    setTableLayout(opts);
    const kind = EXTENSION_KINDS.find((k) => k === opts.kind);
    if (opts.kind !== undefined && !kind)
      throw new ExtctlError("usage", `--kind must be sysext or confext, not ${opts.kind}`);
    let systemd: number | undefined;
    if (opts.systemd !== undefined) {
      systemd = Number(opts.systemd.replace(/^v/, ""));
      if (!Number.isInteger(systemd))
        throw new ExtctlError(
          "usage",
          `--systemd ${opts.systemd} is not a systemd version (e.g. 252)`,
        );
    }
    const { checkImage } = await import("../../operations/check.js");
    const result = await checkImage(
      contextFor(command),
      defined({
        image,
        systemd: systemd,
        kind: kind,
      }),
    );
    if (opts.json) await printJsonAs("check", result);
    else {
      print(
        `${result.compatible ? "MERGES" : "REFUSED"}: ${result.kind} "${result.name}" under systemd ${result.systemdVersion} rules (${result.systemdVersionSource})` +
          (result.reason ? `: ${result.reason}` : ""),
      );
      print(
        renderTable(result.rules, [
          { header: "RULE", value: (r) => r.rule },
          { header: "RESULT", value: (r) => r.status },
          { header: "REASON", value: (r) => r.reason },
        ]),
      );
    }
    process.exitCode = result.compatible ? 0 : 1;
  });
}
