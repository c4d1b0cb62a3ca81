// Enabling a unit under a root the way `systemctl --root=ROOT enable` does: read its [Install]
// section and make the .wants/.requires and alias symlinks in /etc/systemd/system.
import { UNIT_DIR } from "./units.js";

/** Where systemd looks for unit files, in its order (systemd.unit(5), system instance). */
export const UNIT_SEARCH_PATH = [
  "/etc/systemd/system",
  "/usr/local/lib/systemd/system",
  "/usr/lib/systemd/system",
  "/lib/systemd/system",
] as const;

/** systemd's own units that `systemd install` enables, as kairos-init does. */
export const MERGE_UNITS = ["systemd-sysext.service", "systemd-confext.service"] as const;

export interface InstallSection {
  wantedBy: string[];
  requiredBy: string[];
  alias: string[];
}

export interface EnableLink {
  /** Node path of the symlink. */
  path: string;
  /** What it points to: the node path of the unit file. */
  target: string;
}

/**
 * The [Install] section of a unit file. Values are space-separated lists and the keys may repeat;
 * an empty assignment resets the list, as in every systemd list setting.
 */
export function parseInstallSection(text: string): InstallSection {
  const install: InstallSection = { wantedBy: [], requiredBy: [], alias: [] };
  const keys: Record<string, keyof InstallSection> = {
    WantedBy: "wantedBy",
    RequiredBy: "requiredBy",
    Alias: "alias",
  };
  let inInstall = false;
  // A trailing backslash continues the line.
  for (const raw of text.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.startsWith("[")) {
      inInstall = line === "[Install]";
      continue;
    }
    if (!inInstall) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const field = keys[line.slice(0, eq).trim()];
    if (field === undefined) continue;
    const words = line
      .slice(eq + 1)
      .split(/\s+/)
      .filter(Boolean);
    install[field] = words.length === 0 ? [] : [...install[field], ...words];
  }
  return install;
}

/** Whether a unit name is a plain one that can stand in a path (no "/", no "..", no specifiers). */
function plainUnitName(name: string): boolean {
  return /^[A-Za-z0-9:_.\\@-]+\.[a-z]+$/.test(name) && !name.includes("..");
}

/** The symlinks `systemctl enable` makes for `unit`, found at node path `unitFile`. */
export function enableLinks(unit: string, unitFile: string, install: InstallSection): EnableLink[] {
  const links: EnableLink[] = [];
  for (const [list, suffix] of [
    [install.wantedBy, "wants"],
    [install.requiredBy, "requires"],
  ] as const) {
    for (const target of list.filter(plainUnitName))
      links.push({ path: `${UNIT_DIR}/${target}.${suffix}/${unit}`, target: unitFile });
  }
  for (const alias of install.alias.filter(plainUnitName))
    links.push({ path: `${UNIT_DIR}/${alias}`, target: unitFile });
  return links;
}
