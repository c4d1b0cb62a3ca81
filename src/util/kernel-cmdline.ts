// The kernel command line, found the way systemd finds it (proc_cmdline() in its basic/proc-cmdline.c):
// an explicit file first, then $SYSTEMD_PROC_CMDLINE, then /proc/cmdline (inside the root when it has one).
import { READ_CAPS, readBoundedOptional } from "./bounded-read.js";
import type { Root } from "./root.js";

/** systemd reads this variable instead of /proc/cmdline: how a container, a test or an installer hands one in. */
export const CMDLINE_ENV = "SYSTEMD_PROC_CMDLINE";
export const PROC_CMDLINE = "/proc/cmdline";

export interface KernelCmdline {
  text: string;
  /** Where it came from, for messages: a host path or `$SYSTEMD_PROC_CMDLINE`. */
  source: string;
}

export interface KernelCmdlineSources {
  /** A host file given by the operator (--cmdline); wins over everything else. */
  file?: string;
  /** The environment to take $SYSTEMD_PROC_CMDLINE from. */
  env?: NodeJS.ProcessEnv;
  /**
   * With a --root that has no proc/cmdline: read the host's /proc/cmdline instead (boot does, as
   * an installer's chroot sees the host's kernel), or report none (undefined, the default).
   */
  hostFallback?: boolean;
}

/** The cmdline, or undefined when the file it should come from does not exist. */
export async function readKernelCmdline(
  root: Root,
  sources: KernelCmdlineSources = {},
): Promise<KernelCmdline | undefined> {
  if (sources.file !== undefined) return readFrom(sources.file);
  const fromEnv = sources.env?.[CMDLINE_ENV];
  // Set but empty still counts, as in systemd: an empty command line.
  if (fromEnv !== undefined) return { text: fromEnv, source: `$${CMDLINE_ENV}` };
  if (root.isHostRoot) return readFrom(PROC_CMDLINE);
  // Inside a root the file is not followed out of it (a symlink there is refused).
  const inRoot = await root.readPath(PROC_CMDLINE);
  const found = await readFrom(inRoot, true);
  if (found !== undefined || !sources.hostFallback) return found;
  return readFrom(PROC_CMDLINE);
}

async function readFrom(file: string, noFollow = false): Promise<KernelCmdline | undefined> {
  const data = await readBoundedOptional(file, {
    cap: READ_CAPS.small,
    what: "the kernel cmdline",
    noFollow,
  });
  return data === undefined ? undefined : { text: data.toString("utf8"), source: file };
}
