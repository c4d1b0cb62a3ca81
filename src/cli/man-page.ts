// Man pages written from the command tree: extctl(8) and one page per command group, in roff
// (man(7) macros). The synopsis, commands and options come from commander's own Help, so a page
// says what `--help` says; scripts/man.ts writes them to docs/man/ and a unit test fails on drift.
import { Help, type Command, type Option } from "commander";

export interface ManPage {
  /** File name: extctl.8, extctl-sysext.8. */
  file: string;
  text: string;
}

/** Top-level commands documented together on one page (sysext and confext share their verbs). */
const PAGE_OF: Readonly<Record<string, string>> = { confext: "sysext" };

const SEE_ALSO_SYSTEMD = ["systemd-sysext(8)", "systemd-dissect(1)", "veritysetup(8)"];

/** man(7) text: backslashes and a leading dot or quote cannot become requests or escapes. */
function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .split("\n")
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join("\n");
}

/** An option or command spelling: hyphens as \- so that they copy and search as ASCII. */
function literal(text: string): string {
  return roff(text).replace(/-/g, "\\-");
}

function header(name: string, title: string): string {
  // No date: the pages must be the same bytes whenever they are generated from the same tree.
  return `.TH ${name.toUpperCase().replace(/-/g, "\\-")} 8 "" "extctl" "System Administration"\n.SH NAME\n${literal(name)} \\- ${roff(title)}\n`;
}

/** A command's options as --help lists them, less -h/--help, which every command has. */
function optionsOf(help: Help, command: Command): Option[] {
  return help.visibleOptions(command).filter((o) => o.long !== "--help");
}

function optionsSection(help: Help, command: Command, heading = "OPTIONS"): string {
  const options = optionsOf(help, command);
  if (options.length === 0) return "";
  return `.SH ${heading}\n${options.map((o) => optionEntry(help, o)).join("")}`;
}

function optionEntry(help: Help, option: Option): string {
  return `.TP\n.B ${literal(help.optionTerm(option))}\n${roff(help.optionDescription(option))}\n`;
}

function visibleCommands(command: Command): Command[] {
  return (command.commands as (Command & { _hidden?: boolean })[]).filter((c) => !c._hidden);
}

/** Every command under `command` (itself included), depth first. */
function commandsUnder(command: Command): Command[] {
  return [command, ...visibleCommands(command).flatMap(commandsUnder)];
}

function commandEntry(help: Help, command: Command): string {
  const parts = [`.SS ${literal(help.commandUsage(command))}`];
  parts.push(roff(help.commandDescription(command)));
  const options = optionsOf(help, command);
  if (options.length > 0) {
    parts.push(".RS");
    for (const option of options) parts.push(optionEntry(help, option).trimEnd());
    parts.push(".RE");
  }
  return parts.join("\n") + "\n";
}

function groupPage(help: Help, program: Command, commands: Command[]): ManPage {
  const name = `extctl-${commands[0]?.name() ?? ""}`;
  const names = commands.map((c) => c.name());
  const synopsis = commands.map((c) => `.B ${literal(help.commandUsage(c))}`).join("\n.br\n");
  let text = header(name, commands[0]?.description() ?? "");
  text += `.SH SYNOPSIS\n${synopsis}\n`;
  text += `.SH DESCRIPTION\n${commands.map((c) => roff(`extctl ${c.name()}: ${c.description()}.`)).join("\n.PP\n")}\n`;
  if (commands.length > 1)
    text += `.PP\nThe ${names.map((n) => `\\fB${n}\\fR`).join(" and ")} commands take the same verbs and options; ${names.slice(1).join(", ")} work on configuration extensions (/etc) where ${names[0]} works on system extensions (/usr, /opt).\n`;
  const first = commands[0] as Command;
  const entries = commandsUnder(first).slice(1);
  if (entries.length > 0)
    text += `.SH COMMANDS\n${entries.map((c) => commandEntry(help, c)).join("")}`;
  text += optionsSection(help, first);
  text += optionsSection(help, program, "GLOBAL OPTIONS");
  text += `.SH SEE ALSO\n${["extctl(8)", ...SEE_ALSO_SYSTEMD].map((s) => `.BR ${s.replace(/\(/, " (")}`).join(",\n")}\n`;
  return { file: `${name}.8`, text };
}

/** What every page of extctl(8) says that the command tree cannot: exit codes, files, variables. */
const EXIT_STATUS: readonly [code: string, meaning: string][] = [
  ["0", "Done (for check: the image would merge; for verify: the image checks out)."],
  ["1", "An error: what went wrong and what to do next are on standard error."],
  ["2", "A usage error: a missing argument, an unknown option or a value out of range."],
  ["3", "upgrade: nothing to do."],
  [
    "10-17",
    "verify: no verity, unsigned, untrusted signer, bad signature, root hash mismatch, corrupted data block, corrupted hash block, ambiguous image (see extctl-verify(8)).",
  ],
  [
    "75",
    "EX_TEMPFAIL: a catalog, registry, proxy or server could not be reached (refused, DNS, timeout, 5xx after retries, 429); try later.",
  ],
  ["130, 143", "Interrupted by SIGINT or SIGTERM."],
];

const ENVIRONMENT: readonly [name: string, meaning: string][] = [
  ["NO_COLOR", "Print no colours."],
  ["COLUMNS", "The width tables are fitted to when standard output is not a terminal."],
  [
    "JOURNAL_STREAM",
    "Set by systemd for a unit's output: lines on standard error carry their syslog priority (sd-daemon(3)); when standard output is the journal too, upgrade and boot print a line per event and a summary instead of a table.",
  ],
  [
    "SYSTEMD_DISSECT_VERITY_EMBEDDED",
    "0 (as systemd-dissect takes it) for kernels without device-mapper: systemd mounts a DDI's data partition without dm-verity, and check judges images that way. It gives up integrity checks while the image is in use.",
  ],
  [
    "HTTPS_PROXY, HTTP_PROXY, NO_PROXY",
    "Proxies for https: and http: sources, catalogs and registries.",
  ],
  [
    "REGISTRY_AUTH_FILE, DOCKER_CONFIG",
    "Where registry credentials are read from, as podman and docker keep them.",
  ],
  ["EXTCTL_DEBUG", "Print the cause of an error with its stack."],
];

const FILES: readonly [path: string, meaning: string][] = [
  [
    "/var/lib/kairos/extensions",
    "The store of system extension images, with the profile directories active, passive, recovery and common of links to them.",
  ],
  ["/var/lib/kairos/confexts", "The same for configuration extensions."],
  [
    "/run/extensions, /run/confexts",
    "What systemd-sysext and systemd-confext merge: linked at boot by extctl boot.",
  ],
  ["/etc/verity.d, /run/verity.d", "Certificates that image signatures are checked against."],
  ["/etc/extctl/policy", "The node's image policy (signed, trusted or any)."],
  ["/etc/extctl/catalogs", "Catalogs searched when an extension is installed by name."],
  ["/run/lock/extctl.lock", "Serialises extctl runs on one root."],
];

function definitionList(entries: readonly (readonly [string, string])[], bold = true): string {
  return entries
    .map(([term, text]) => `.TP\n${bold ? ".B " : ""}${literal(term)}\n${roff(text)}\n`)
    .join("");
}

function mainPage(help: Help, program: Command, groups: Command[][]): ManPage {
  let text = header("extctl", "manage systemd system and configuration extensions");
  text += `.SH SYNOPSIS\n.B extctl\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]\n`;
  text += `.SH DESCRIPTION\n${roff(program.description())}\n`;
  text += `.PP\nThe command grammar follows \\fBkairos-agent sysext|confext VERB\\fR. Data goes to standard output (a table, or JSON with \\fB\\-\\-json\\fR); notes, warnings, errors and progress go to standard error.\n`;
  text += ".SH COMMANDS\n";
  for (const group of groups)
    for (const command of group)
      text += `.TP\n.B extctl ${literal(command.name())}\n${roff(command.description())}.\nSee\n.BR extctl-${(group[0] as Command).name()} (8).\n`;
  text += optionsSection(help, program);
  text += `.SH "EXIT STATUS"\n${definitionList(EXIT_STATUS, false)}`;
  text += `.SH ENVIRONMENT\n${definitionList(ENVIRONMENT)}`;
  text += `.SH FILES\n${definitionList(FILES)}`;
  const pages = groups.map((g) => `extctl-${(g[0] as Command).name()}(8)`);
  text += `.SH "SEE ALSO"\n${[...pages, ...SEE_ALSO_SYSTEMD].map((s) => `.BR ${s.replace(/\(/, " (")}`).join(",\n")}\n`;
  return { file: "extctl.8", text };
}

/** extctl(8) and a page per command group, from the whole program (buildProgram() with no argv). */
export function manPages(program: Command): ManPage[] {
  const help = new Help();
  help.helpWidth = 1_000_000; // no wrapping: man wraps for the reader's terminal
  const groups: Command[][] = [];
  for (const command of visibleCommands(program)) {
    const into = PAGE_OF[command.name()];
    const group = into === undefined ? undefined : groups.find((g) => g[0]?.name() === into);
    if (group) group.push(command);
    else groups.push([command]);
  }
  return [mainPage(help, program, groups), ...groups.map((g) => groupPage(help, program, g))];
}
