// Works out the boot state the way immucore does (spec/kairos.md section 3 step 1): from the
// kernel cmdline and, on UKI boots, the systemd-boot EFI variables; and writes the /run/cos sentinels.
import { chmod, writeFile } from "node:fs/promises";
import { FILE_MODE, makeDir } from "../../util/owned-state.js";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "../../util/errors.js";
import type { Root } from "../../util/root.js";
import { READ_CAPS, readBoundedOptional } from "../../util/bounded-read.js";
import { CMDLINE_ENV, PROC_CMDLINE, readKernelCmdline } from "../../util/kernel-cmdline.js";
import { SENTINEL_DIR } from "../store/layout.js";
import type { BootState } from "./boot-state.js";

/** The vendor GUID systemd-boot uses for its Loader* variables. */
export const LOADER_VENDOR_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
export const LOADER_DEVICE_PART_UUID = `LoaderDevicePartUUID-${LOADER_VENDOR_GUID}`;
export const LOADER_ENTRY_SELECTED = `LoaderEntrySelected-${LOADER_VENDOR_GUID}`;

export const DEFAULT_EFIVARS = "/sys/firmware/efi/efivars";
export const DEFAULT_CMDLINE = PROC_CMDLINE;

export interface BootDetection {
  state: BootState;
  /** Booted through a UKI (rd.immucore.uki on the cmdline). */
  uki: boolean;
  /** One sentence on how the state was found, for the summary. */
  reason: string;
}

/** Where to read from; unset fields take the defaults described in detectBootState. */
export interface BootSources {
  /** Host path of the efivarfs directory. */
  efivarsDir?: string;
  /** Host path of the cmdline file; wins over $SYSTEMD_PROC_CMDLINE. */
  cmdlineFile?: string;
  /** Where $SYSTEMD_PROC_CMDLINE is looked up (the Context's env); unset: not looked up. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The non-UKI rules: substrings of the cmdline in immucore's order. Returns undefined when no
 * rule matches (the state is then unknown).
 */
export function stateFromCmdline(cmdline: string): BootState | undefined {
  const has = (s: string) => cmdline.includes(s);
  if (has("kairos.reset")) return "autoreset";
  if (has("COS_ACTIVE")) return "active";
  if (has("COS_PASSIVE")) return "passive";
  if (has("COS_RECOVERY") || has("COS_SYSTEM") || has("recovery-mode")) return "recovery";
  if (has("live:LABEL") || has("live:CDLABEL") || has("netboot")) return "livecd";
  return undefined;
}

/**
 * Decodes an efivarfs file: a 4-byte attribute word, then a UTF-16LE string. Control characters
 * (the trailing NUL among them) are stripped, as immucore does.
 */
export function decodeEfiString(data: Buffer): string {
  if (data.length <= 4) return "";
  const body = data.subarray(4, 4 + ((data.length - 4) & ~1));
  // eslint-disable-next-line no-control-regex
  return body.toString("utf16le").replace(/[\u0000-\u001f\u007f-\u009f]/g, "");
}

/** Maps a LoaderEntrySelected value ("active.conf") to a state; anything unexpected is unknown. */
export function stateFromLoaderEntry(entry: string): BootState {
  if (!entry.endsWith(".conf")) return "unknown";
  const prefix = entry.slice(0, -".conf".length);
  switch (prefix) {
    case "active":
    case "passive":
    case "recovery":
      return prefix;
    case "statereset":
      return "autoreset";
    default:
      return "unknown";
  }
}

/** Pure decision from the cmdline and the two EFI variables (undefined = absent). */
export function decideBootState(
  cmdline: string,
  efi: { devicePartUuid?: Buffer; entrySelected?: Buffer },
): BootDetection {
  if (cmdline.includes("kairos.ram"))
    return { state: "active", uki: false, reason: "the cmdline has kairos.ram" };
  if (cmdline.includes("rd.immucore.uki")) {
    const part = efi.devicePartUuid ? decodeEfiString(efi.devicePartUuid) : "";
    if (part === "") {
      return {
        state: "livecd",
        uki: true,
        reason: "UKI boot without LoaderDevicePartUUID: booted from removable media",
      };
    }
    const entry = efi.entrySelected ? decodeEfiString(efi.entrySelected) : "";
    const state = stateFromLoaderEntry(entry);
    return {
      state,
      uki: true,
      reason:
        entry === ""
          ? "UKI boot without LoaderEntrySelected"
          : `UKI boot, LoaderEntrySelected is ${JSON.stringify(entry)}`,
    };
  }
  const state = stateFromCmdline(cmdline);
  return state
    ? { state, uki: false, reason: `the cmdline says ${state}` }
    : { state: "unknown", uki: false, reason: "the cmdline names no boot state" };
}

/** The cmdline and the loader's EFI variables are a few hundred bytes; read no more than that. */
async function readOptional(file: string, what: string): Promise<Buffer | undefined> {
  return readBoundedOptional(file, { cap: READ_CAPS.small, what });
}

/** The efivarfs directory: inside the root when one is given. */
export async function defaultEfivarsDir(root: Root): Promise<string> {
  return root.isHostRoot ? DEFAULT_EFIVARS : root.readPath(DEFAULT_EFIVARS);
}

/**
 * The cmdline comes from `cmdlineFile`, else $SYSTEMD_PROC_CMDLINE, else ROOT/proc/cmdline, else
 * (a root without one, as an installer's chroot) the host's /proc/cmdline.
 */
export async function detectBootState(
  root: Root,
  sources: BootSources = {},
): Promise<BootDetection> {
  const efivarsDir = sources.efivarsDir ?? (await defaultEfivarsDir(root));
  const cmdline = await readKernelCmdline(root, {
    ...(sources.cmdlineFile === undefined ? {} : { file: sources.cmdlineFile }),
    ...(sources.env === undefined ? {} : { env: sources.env }),
    hostFallback: true,
  });
  if (cmdline === undefined) {
    const file = sources.cmdlineFile ?? DEFAULT_CMDLINE;
    throw new ExtctlError("not-found", `the kernel cmdline file ${file} does not exist`, {
      hint: `pass --cmdline FILE or set $SYSTEMD_PROC_CMDLINE`,
    });
  }
  const detection = await decideFromCmdline(cmdline.text, efivarsDir);
  // Say so when the state did not come from a file: a stray variable is easy to miss.
  if (cmdline.source === `$${CMDLINE_ENV}`) detection.reason += ` (from $${CMDLINE_ENV})`;
  return detection;
}

async function decideFromCmdline(text: string, efivarsDir: string): Promise<BootDetection> {
  // EFI variables only matter on UKI boots; do not touch efivarfs otherwise.
  if (text.includes("kairos.ram") || !text.includes("rd.immucore.uki"))
    return decideBootState(text, {});
  const [devicePartUuid, entrySelected] = await Promise.all([
    readOptional(path.join(efivarsDir, LOADER_DEVICE_PART_UUID), "the EFI variable"),
    readOptional(path.join(efivarsDir, LOADER_ENTRY_SELECTED), "the EFI variable"),
  ]);
  return decideBootState(text, {
    ...(devicePartUuid ? { devicePartUuid } : {}),
    ...(entrySelected ? { entrySelected } : {}),
  });
}

/** Sentinel file names for a detection: <state>_mode, plus uki_boot_mode on UKI boots. */
export function sentinelNames(detection: BootDetection): string[] {
  return [`${detection.state}_mode`, ...(detection.uki ? ["uki_boot_mode"] : [])];
}

/** Writes the missing sentinels under /run/cos; returns the node paths it created. */
export async function writeSentinels(root: Root, detection: BootDetection): Promise<string[]> {
  const created: string[] = [];
  let dir: string;
  try {
    // A /run/cos that leads outside the root is refused (Root.writePath).
    dir = await root.writePath(SENTINEL_DIR, { what: SENTINEL_DIR });
    // immucore's directory: made 0755 when missing, never refused (boot must go on).
    await makeDir(dir, { checkExisting: false, what: SENTINEL_DIR });
  } catch (e) {
    throw fsError(e, `create ${SENTINEL_DIR}`);
  }
  for (const name of sentinelNames(detection)) {
    const nodePath = `${SENTINEL_DIR}/${name}`;
    try {
      // "wx": an existing sentinel (immucore's, or ours from an earlier run) is left alone.
      await writeFile(path.join(dir, name), "", { flag: "wx", mode: FILE_MODE });
      await chmod(path.join(dir, name), FILE_MODE);
      created.push(nodePath);
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw fsError(e, `write the sentinel ${nodePath}`);
    }
  }
  return created;
}
