// `extctl systemd install [--uninstall]`: the units that run `extctl boot` before
// systemd-sysext/confext, for systemd 254+ their image-policy drop-ins and, with --auto-upgrade,
// a timer running `upgrade --all --now`.
import type { Command } from "commander";
import { UsageError } from "../../util/errors.js";
import {
  addFlags,
  boolFlag,
  contextFor,
  defined,
  flagPair,
  flagsOf,
  jsonFlag,
  textFlag,
  type FlagSpec,
} from "../options.js";
import { print, printJson } from "../render.js";

const SYSTEMD_INSTALL_FLAGS = {
  uninstall: boolFlag("--uninstall", "remove exactly the files install wrote"),
  systemd: textFlag(
    "--systemd <version>",
    "the node's systemd version (default: detected under the root)",
  ),
  policy: textFlag(
    "--policy <policy>",
    "the drop-ins' image policy: signed, verity, any (Kairos's extensions.ignore_signatures) or a systemd image policy (default: signed on a trusted boot, else verity)",
  ),
  trusted: flagPair(
    ["--trusted", "the trusted-boot policy: the same as --policy signed"],
    ["--no-trusted", "the normal-boot policy: the same as --policy verity"],
  ),
  extctl: textFlag(
    "--extctl <path>",
    "the extctl the unit runs (default: this one, or /usr/bin/extctl)",
  ),
  autoUpgrade: boolFlag(
    "--auto-upgrade",
    "also write and enable extctl-upgrade.timer and extctl-upgrade.service, which run `sysext upgrade --all --now` then `confext upgrade --all --now`",
  ),
  onCalendar: textFlag(
    "--on-calendar <spec>",
    "with --auto-upgrade: when the timer fires, a systemd calendar event (default: daily, with up to 1h random delay)",
  ),
  metricsDir: textFlag(
    "--metrics-dir <dir>",
    "make boot, upgrade and bless write DIR/extctl.prom (0644, atomically) for node_exporter's textfile collector; kept in /etc/extctl/metrics-dir",
  ),
  json: jsonFlag(),
} as const satisfies FlagSpec;

export function registerSystemdCommand(program: Command): void {
  const parent = program
    .command("systemd")
    .description("systemd integration for boot-time linking");
  addFlags(
    parent
      .command("install")
      .description(
        "write extctl-boot.service (before systemd-sysext/confext), enable systemd-sysext and systemd-confext.service and, for systemd 254+, write image-policy drop-ins",
      ),
    SYSTEMD_INSTALL_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, SYSTEMD_INSTALL_FLAGS);
    let systemdVersion: number | undefined;
    if (opts.systemd !== undefined) {
      systemdVersion = Number(opts.systemd);
      if (!/^\d+$/.test(opts.systemd))
        throw new UsageError(
          `--systemd ${opts.systemd} is not a systemd version`,
          "give the major version, e.g. --systemd 255",
        );
    }
    if (opts.policy !== undefined && opts.trusted !== undefined)
      throw new UsageError(
        `--policy and --${opts.trusted ? "" : "no-"}trusted both set the drop-ins' policy`,
        "give one of them",
      );
    if (opts.onCalendar !== undefined && !opts.autoUpgrade)
      throw new UsageError(
        "--on-calendar is the upgrade timer's schedule",
        "give it with --auto-upgrade",
      );
    const { systemdInstall } = await import("../../operations/systemd-install.js");
    const result = await systemdInstall(
      contextFor(command),
      defined({
        uninstall: opts.uninstall,
        systemdVersion,
        trusted: opts.trusted,
        policy: opts.policy,
        extctlPath: opts.extctl,
        autoUpgrade: opts.autoUpgrade,
        onCalendar: opts.onCalendar,
        metricsDir: opts.metricsDir,
      }),
    );
    if (opts.json) return printJson(result);
    const verb = result.action === "install" ? "wrote" : "removed";
    const lines = [
      ...result.changed.map((p) => `${verb} ${p}`),
      ...result.unchanged.map((p) => `${result.action === "install" ? "unchanged" : "kept"} ${p}`),
      ...result.notes.map((n) => `note: ${n}`),
    ];
    print(lines.length ? lines.join("\n") : "nothing to do");
  });
}
