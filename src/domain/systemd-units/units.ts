// The unit files extctl installs: extctl-boot.service (immucore's linking step, before
// systemd-sysext/confext start), for systemd 254+ drop-ins carrying the image policy and the
// hierarchy list, as Kairos writes them (spec/kairos.md section 3 step 6), and with
// --auto-upgrade a timer and service running `upgrade --all --now` (like systemd-sysupdate's).
import { ExtctlError } from "../../util/errors.js";
import type { ExtensionKind } from "../store/layout.js";
import { quoteName } from "../store/names.js";
import { parseImagePolicy } from "../trust/policy.js";

/** Every file we write starts with this line; uninstall removes only files that carry it. */
export const UNIT_MARKER =
  "# Written by `extctl systemd install`; `extctl systemd install --uninstall` removes it.";

export const BOOT_UNIT_NAME = "extctl-boot.service";
export const UNIT_DIR = "/etc/systemd/system";
export const DROP_IN_NAME = "10-extctl-image-policy.conf";

/** The first systemd with --image-policy and systemd-confext. */
export const MIN_DROP_IN_VERSION = 254;

/** The image policies Kairos writes: signed on a trusted (UKI) boot, verity otherwise. */
export const TRUSTED_IMAGE_POLICY = "root=signed+absent:usr=signed+absent";
export const NORMAL_IMAGE_POLICY = "root=verity+absent:usr=verity+absent";
/** Kairos's extensions.ignore_signatures: what systemd-sysext allows by default, written out. */
export const ANY_IMAGE_POLICY =
  "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent";

export type DropInPolicyName = "signed" | "verity" | "any";

/** The policy a drop-in carries: one of the three names, or a systemd policy as given. */
export interface DropInPolicy {
  name: DropInPolicyName | "custom";
  /** What --image-policy= gets. */
  spec: string;
}

const DROP_IN_POLICIES: Readonly<Record<DropInPolicyName, string>> = {
  signed: TRUSTED_IMAGE_POLICY,
  verity: NORMAL_IMAGE_POLICY,
  any: ANY_IMAGE_POLICY,
};

const POLICY_WHY: Readonly<Record<DropInPolicy["name"], string>> = {
  signed: "a trusted (UKI) boot: signed images only",
  verity: "a normal boot: verity-protected images",
  any: "any image, signed or not (Kairos's extensions.ignore_signatures)",
  custom: "the policy given to `extctl systemd install --policy`",
};

/** `signed`, `verity`, `any` or a systemd image policy (checked, and safe in a unit file). */
export function dropInPolicy(input: string): DropInPolicy {
  const text = input.trim();
  if (text === "signed" || text === "verity" || text === "any")
    return { name: text, spec: DROP_IN_POLICIES[text] };
  parseImagePolicy(text);
  // The policy syntax needs none of these; in a unit file they would split or expand the line.
  if (!/^[A-Za-z0-9=+:*~_-]+$/.test(text))
    throw new ExtctlError(
      "usage",
      `the image policy ${quoteName(text)} has characters a unit file would read differently`,
      {
        hint: "use signed, verity, any, or systemd's syntax such as root=signed+absent:usr=signed+absent",
      },
    );
  return { name: "custom", spec: text };
}

/**
 * Hierarchies systemd-sysext may overlay: the /usr subdirs one by one rather than /usr, so that
 * /usr/local (often a writable bind mount on Kairos) is never hidden under a read-only overlay.
 */
export const SYSEXT_HIERARCHIES = [
  "/usr/bin",
  "/usr/sbin",
  "/usr/lib",
  "/usr/lib64",
  "/usr/libexec",
  "/usr/include",
  "/usr/share",
  "/usr/src",
  "/opt",
] as const;

/**
 * What systemd-confext.service merges: its default, /etc. The drop-in leaves it alone; the profile
 * script names it so that a login shell's systemd-confext agrees with the unit even where the
 * environment was given something else.
 */
export const CONFEXT_HIERARCHIES = ["/etc"] as const;

const HIERARCHY_VARIABLES: Readonly<Record<ExtensionKind, string>> = {
  sysext: "SYSTEMD_SYSEXT_HIERARCHIES",
  confext: "SYSTEMD_CONFEXT_HIERARCHIES",
};

export const PROFILE_DIR = "/etc/profile.d";

export interface UnitFile {
  /** Node path of the file. */
  path: string;
  content: string;
}

/** The line of the boot unit that records which enable links install made (uninstall removes those). */
const ENABLED_PREFIX = "# Enabled by this install: ";

export function bootUnit(extctlPath: string, enabledLinks: readonly string[] = []): UnitFile {
  const enabled = enabledLinks.length ? `${ENABLED_PREFIX}${enabledLinks.join(" ")}\n` : "";
  const content = `${UNIT_MARKER}
${enabled}[Unit]
Description=Link the boot profile's system and configuration extensions into /run (extctl)
Documentation=man:extctl-boot(8) man:extctl(8) https://kairos.io/docs/advanced/sys-extensions/
DefaultDependencies=no
After=local-fs.target
RequiresMountsFor=/var/lib/kairos
Before=systemd-sysext.service systemd-confext.service sysinit.target
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${quoteArg(extctlPath)} boot --no-refresh

[Install]
WantedBy=sysinit.target
`;
  return { path: `${UNIT_DIR}/${BOOT_UNIT_NAME}`, content };
}

/** The enable links a boot unit written by install records (see bootUnit). */
export function enabledByInstall(bootUnitText: string): string[] {
  const line = bootUnitText.split("\n").find((l) => l.startsWith(ENABLED_PREFIX));
  return line ? line.slice(ENABLED_PREFIX.length).split(" ").filter(Boolean) : [];
}

/** The symlink `systemctl enable` would make for the boot unit. */
export function bootUnitWantsLink(): { path: string; target: string } {
  return {
    path: `${UNIT_DIR}/sysinit.target.wants/${BOOT_UNIT_NAME}`,
    target: `${UNIT_DIR}/${BOOT_UNIT_NAME}`,
  };
}

export function dropIn(kind: ExtensionKind, policy: DropInPolicy): UnitFile {
  const tool = kind === "sysext" ? "systemd-sysext" : "systemd-confext";
  const lines = [
    UNIT_MARKER,
    `# Image policy ${policy.name}: ${POLICY_WHY[policy.name]}.`,
    "[Service]",
    // An empty ExecStart= drops the unit's own command before ours replaces it.
    "ExecStart=",
    `ExecStart=/usr/bin/${tool} refresh --image-policy=${policy.spec}`,
  ];
  if (kind === "sysext")
    lines.push(`Environment="${HIERARCHY_VARIABLES.sysext}=${SYSEXT_HIERARCHIES.join(":")}"`);
  return {
    path: `${UNIT_DIR}/${tool}.service.d/${DROP_IN_NAME}`,
    content: lines.join("\n") + "\n",
  };
}

/**
 * /etc/profile.d/systemd-sysext.sh (and -confext.sh): a login shell exports the hierarchies the
 * unit merges with, as Kairos does, so `systemd-sysext status` typed by an operator looks at
 * /usr/bin, /usr/lib... (where the unit merged) rather than /usr, where nothing is merged.
 */
export function profileScript(kind: ExtensionKind): UnitFile {
  const tool = kind === "sysext" ? "systemd-sysext" : "systemd-confext";
  const hierarchies = kind === "sysext" ? SYSEXT_HIERARCHIES : CONFEXT_HIERARCHIES;
  const content = [
    UNIT_MARKER,
    `# The hierarchies ${tool}.service merges, so that ${tool} run from a login shell sees them.`,
    `export ${HIERARCHY_VARIABLES[kind]}="${hierarchies.join(":")}"`,
  ];
  return { path: `${PROFILE_DIR}/${tool}.sh`, content: content.join("\n") + "\n" };
}

export const BLESS_SERVICE_NAME = "extctl-bless.service";

/**
 * `extctl bless` once boot-complete.target is reached (boot assessment for extensions, issue 28):
 * as systemd-bless-boot.service, it Requires= and comes After= boot-complete.target, so a unit
 * that is RequiredBy= boot-complete.target and fails keeps a pending version from being blessed,
 * and a later boot with no tries left goes back to the previous version.
 */
export function blessService(extctlPath: string): UnitFile {
  const content = `${UNIT_MARKER}
[Unit]
Description=Mark the booted extension versions good (extctl)
Documentation=man:extctl-bless(8) man:systemd.special(7)
Requires=boot-complete.target
After=local-fs.target boot-complete.target extctl-boot.service
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${quoteArg(extctlPath)} bless

[Install]
WantedBy=multi-user.target
`;
  return { path: `${UNIT_DIR}/${BLESS_SERVICE_NAME}`, content };
}

/** The symlink `systemctl enable extctl-bless.service` would make. */
export function blessServiceWantsLink(): { path: string; target: string } {
  return {
    path: `${UNIT_DIR}/multi-user.target.wants/${BLESS_SERVICE_NAME}`,
    target: `${UNIT_DIR}/${BLESS_SERVICE_NAME}`,
  };
}

export const UPGRADE_SERVICE_NAME = "extctl-upgrade.service";
export const UPGRADE_TIMER_NAME = "extctl-upgrade.timer";
/** systemd-sysupdate.timer's own schedule is weekly; extensions carry fixes, so daily. */
export const DEFAULT_ON_CALENDAR = "daily";

/**
 * The service the upgrade timer starts: one oneshot unit that upgrades the system extensions,
 * then the configuration extensions (two ExecStart= lines run in order). One unit rather than one
 * per kind because a timer starts exactly one unit, and `systemctl status extctl-upgrade` then
 * shows the whole run; a failed sysext upgrade (which keeps the old version merged) fails the
 * unit and skips the confext one until the next run, so the failure is seen, not hidden. An
 * outage of the catalog or registry (exit 75) is no failure: the timer's next run is the retry.
 */
export function upgradeService(extctlPath: string): UnitFile {
  const program = quoteArg(extctlPath);
  const content = `${UNIT_MARKER}
[Unit]
Description=Upgrade the system and configuration extensions from their catalogs (extctl)
Documentation=man:extctl-sysext(8) man:extctl(8) https://kairos.io/docs/advanced/sys-extensions/
Wants=network-online.target
After=network-online.target extctl-boot.service systemd-sysext.service systemd-confext.service

[Service]
Type=oneshot
ExecStart=${program} sysext upgrade --all --now
ExecStart=${program} confext upgrade --all --now
# upgrade exits 3 when there is nothing to do, and 75 (EX_TEMPFAIL) when a catalog or registry
# cannot be reached: neither is a failure (the next timer run tries again), and the confext line
# still runs. Only 1, an upgrade that failed and kept the old version, fails the unit.
SuccessExitStatus=3 75
`;
  return { path: `${UNIT_DIR}/${UPGRADE_SERVICE_NAME}`, content };
}

/** The timer that starts extctl-upgrade.service; `onCalendar` must have passed checkCalendarSpec. */
export function upgradeTimer(onCalendar: string = DEFAULT_ON_CALENDAR): UnitFile {
  const content = `${UNIT_MARKER}
[Unit]
Description=Upgrade the system and configuration extensions regularly (extctl)
Documentation=man:extctl-sysext(8) man:extctl(8) https://kairos.io/docs/advanced/sys-extensions/

[Timer]
OnCalendar=${onCalendar}
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
`;
  return { path: `${UNIT_DIR}/${UPGRADE_TIMER_NAME}`, content };
}

/** The symlink `systemctl enable extctl-upgrade.timer` would make. */
export function upgradeTimerWantsLink(): { path: string; target: string } {
  return {
    path: `${UNIT_DIR}/timers.target.wants/${UPGRADE_TIMER_NAME}`,
    target: `${UNIT_DIR}/${UPGRADE_TIMER_NAME}`,
  };
}

const CALENDAR_SHORTHANDS = new Set([
  "minutely",
  "hourly",
  "daily",
  "weekly",
  "monthly",
  "quarterly",
  "semiannually",
  "yearly",
  "annually",
]);

/**
 * The syntactic check of an OnCalendar= value, for when `systemd-analyze calendar` is not there
 * to parse it (and, always, that it is safe on one unit-file line: no newline, `%` specifier,
 * quote or backslash). A shorthand (`daily`), or up to four words (weekday, date, time, time
 * zone) of the characters systemd.time(7) uses. Returns the spec trimmed; throws a usage error.
 */
export function checkCalendarSpec(input: string, options: { parsed?: boolean } = {}): string {
  const spec = input.trim();
  const bad = (why: string): never => {
    throw new ExtctlError("usage", `--on-calendar ${quoteName(input)} ${why}`, {
      hint: "give a systemd calendar event such as daily, weekly, 'Mon *-*-* 03:00' or '*-*-* 04:00:00 UTC' (see systemd.time(7))",
      exitCode: 2,
    });
  };
  if (spec.length === 0) bad("is empty");
  if (spec.length > 200) bad("is longer than 200 characters");
  if (!/^[A-Za-z0-9 *.,:~/+_-]+$/.test(spec))
    bad("holds a character a calendar event never has (a newline, %, a quote or a backslash)");
  if (options.parsed) return spec;
  const words = spec.split(/ +/);
  if (words.length === 1 && CALENDAR_SHORTHANDS.has(spec.toLowerCase())) return spec;
  if (words.length > 4) bad("has more than four parts (weekday, date, time, time zone)");
  const dateOrTime = /^[0-9*][0-9*.,:~/+-]*$/;
  const day = "(?:mon|tue|wed|thu|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?";
  const weekday = new RegExp(`^${day}(?:(?:,|\\.\\.)${day})*$`, "i");
  const zone = /^[A-Za-z][A-Za-z0-9_+/-]*$/;
  const ok = words.every(
    (w, i) =>
      dateOrTime.test(w) ||
      (i === 0 && weekday.test(w)) ||
      (i === words.length - 1 && i > 0 && zone.test(w)),
  );
  if (!ok || !words.some((w) => dateOrTime.test(w) || weekday.test(w)))
    bad("is not a calendar event systemd reads");
  return spec;
}

export interface UnitSet {
  files: UnitFile[];
  links: { path: string; target: string }[];
}

/**
 * What `systemd install` writes for a systemd version (undefined: unknown, no drop-ins);
 * `enabledLinks` are the links of systemd's own units that this install makes or made before;
 * with `autoUpgrade`, the upgrade service and timer, and the link enabling the timer.
 */
export function unitSet(
  extctlPath: string,
  systemdVersion: number | undefined,
  policy: DropInPolicy,
  enabledLinks: readonly string[] = [],
  autoUpgrade?: { onCalendar: string },
): UnitSet {
  const files = [bootUnit(extctlPath, enabledLinks), blessService(extctlPath)];
  const links = [bootUnitWantsLink(), blessServiceWantsLink()];
  if (systemdVersion !== undefined && systemdVersion >= MIN_DROP_IN_VERSION)
    files.push(
      dropIn("sysext", policy),
      dropIn("confext", policy),
      profileScript("sysext"),
      profileScript("confext"),
    );
  if (autoUpgrade !== undefined) {
    files.push(upgradeService(extctlPath), upgradeTimer(autoUpgrade.onCalendar));
    links.push(upgradeTimerWantsLink());
  }
  return { files, links };
}

/**
 * Checks the program path a unit will run (--extctl): absolute, and only characters that need
 * no quoting in a unit file. A newline would start a new directive (ExecStartPre=...), and
 * whitespace, quotes, `%` specifiers, `$` or `\\` would change what systemd runs (issue 12).
 */
export function checkExecPath(program: string): string {
  const fault = !program.startsWith("/")
    ? "is not an absolute path"
    : !/^[A-Za-z0-9/._+@:,=-]+$/.test(program)
      ? "holds a character a unit file would read differently (whitespace, a control character, %, $, a quote or a backslash)"
      : program.split("/").some((part) => part === "." || part === "..")
        ? 'holds "." or ".." components'
        : undefined;
  if (fault !== undefined) {
    throw new ExtctlError("usage", `--extctl ${quoteName(program)} ${fault}`, {
      hint: "give the absolute path of the extctl program, e.g. /usr/bin/extctl",
    });
  }
  return program;
}

/** Quotes an ExecStart= argument when it holds characters systemd would split or expand. */
export function quoteArg(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$/g, "$$$$").replace(/%/g, "%%")}"`;
}

/** Reads "252" out of a libsystemd-shared-252.so (or -252.1.so) file name. */
export function versionFromLibraryName(name: string): number | undefined {
  const m = /^libsystemd-shared-(\d+)(?:[.~-][\w.~-]*)?\.so$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
