// systemd.v(7) version directories (systemd 256+): a directory NAME.raw.v/ (or
// NAME.sysext.raw.v/) in a search dir stands for the image NAME, and systemd picks one file in it,
// NAME_VERSION[_ARCH][+TRIES].raw. Facts from systemd's src/shared/vpick.c (make_choice) and
// src/shared/discover-image.c (image_discover), written here from those rules:
// - entries must start with "NAME_" and end with the directory's suffix (".raw", ".sysext.raw");
// - "+LEFT" or "+LEFT-DONE" at the end is a tries counter and is cut off;
// - the last "_X" is cut off too; when X is an architecture it must be the native one, the
//   secondary one, or the entry is skipped (no architecture or an unknown word: any);
// - what is left is the version: not empty, only letters, digits and ".,_-+";
// - best first: tries left over none left, the newer version (strverscmp_improved), the native
//   architecture over the secondary over none, more tries left, fewer tries done, then the
//   file name compared byte-wise (the greater wins).
import type { ExtensionKind } from "../store/layout.js";
import { strverscmpImproved } from "./strverscmp.js";

/** systemd's first version that reads NAME.raw.v/ directories (systemd.v). */
export const FIRST_VPICK_SYSTEMD = 256;

/** Every name systemd's architecture_from_string() knows. */
const ARCHITECTURES = new Set([
  "x86",
  "x86-64",
  "ppc",
  "ppc-le",
  "ppc64",
  "ppc64-le",
  "ia64",
  "parisc",
  "parisc64",
  "s390",
  "s390x",
  "sparc",
  "sparc64",
  "mips",
  "mips-le",
  "mips64",
  "mips64-le",
  "alpha",
  "arm",
  "arm-be",
  "arm64",
  "arm64-be",
  "sh",
  "sh64",
  "m68k",
  "tilegx",
  "cris",
  "nios2",
  "riscv32",
  "riscv64",
  "arc",
  "arc-be",
  "loongarch64",
]);

export interface VersionedDir {
  /** The image name systemd gives the directory's picks (NAME). */
  name: string;
  /** What each entry ends in: ".raw", ".sysext.raw", or "" (versions that are directories). */
  suffix: string;
  /** Entries are regular files (suffix .raw) or directories (no suffix). */
  wants: "file" | "dir";
}

export interface VersionPick {
  file: string;
  version: string;
  architecture?: string;
  triesLeft?: number;
  triesDone?: number;
}

/**
 * How systemd 256+ reads the directory `dirName` (NAME.raw.v, NAME.KIND.raw.v or NAME.v) found
 * in a search dir, or undefined when it is no version directory (no ".v", or an invalid name).
 */
export function versionedDir(dirName: string, kind: ExtensionKind): VersionedDir | undefined {
  if (!dirName.endsWith(".v")) return undefined;
  let name = dirName.slice(0, -2);
  let suffix = "";
  if (name.endsWith(".raw")) {
    name = name.slice(0, -4);
    suffix = ".raw";
  }
  if (name.endsWith(`.${kind}`)) {
    name = name.slice(0, -(kind.length + 1));
    suffix = `.${kind}${suffix}`;
  }
  if (name === "" || name.startsWith(".") || name.includes("/")) return undefined;
  return { name, suffix, wants: suffix.endsWith(".raw") ? "file" : "dir" };
}

const VERSION_CHARS = /^[A-Za-z0-9.,_+-]+$/;

function parseTries(text: string): { left: number; done: number } | undefined {
  const m = /^\+(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) return undefined;
  return { left: Number(m[1]), done: m[2] === undefined ? 0 : Number(m[2]) };
}

interface Candidate extends VersionPick {
  archIndex: number;
  left: number;
  done: number;
}

const cmp = (a: number, b: number) => (a < b ? -1 : a > b ? 1 : 0);

/** > 0 when `a` is the better pick (see the module note for the order). */
function better(a: Candidate, b: Candidate): number {
  let d = cmp(Number(a.left !== 0), Number(b.left !== 0));
  if (d === 0) d = strverscmpImproved(a.version, b.version);
  if (d === 0) d = -cmp(a.archIndex, b.archIndex);
  if (d === 0) d = cmp(a.left, b.left);
  if (d === 0) d = -cmp(a.done, b.done);
  if (d === 0) d = Buffer.compare(Buffer.from(a.file), Buffer.from(b.file));
  return d;
}

/**
 * The entry systemd picks among `entries` (every name in the directory) for `dir`, on a host
 * whose architectures are `native` and `secondary`; undefined when none matches (systemd then
 * skips the directory: it neither merges nor masks). systemd looks at the type only of the
 * entry it picked: when that is not `dir.wants` it skips the whole directory.
 */
export function pickVersion(
  entries: readonly string[],
  dir: VersionedDir,
  native: string | undefined,
  secondary?: string,
): VersionPick | undefined {
  const arches = [native, secondary].filter((a): a is string => a !== undefined);
  let best: Candidate | undefined;
  for (const file of entries) {
    if (!file.startsWith(`${dir.name}_`)) continue;
    let rest = file.slice(dir.name.length + 1);
    if (!rest.endsWith(dir.suffix)) continue;
    rest = rest.slice(0, rest.length - dir.suffix.length);
    let left = Number.MAX_SAFE_INTEGER;
    let done = Number.MAX_SAFE_INTEGER;
    const plus = rest.lastIndexOf("+");
    const tries = plus >= 0 ? parseTries(rest.slice(plus)) : undefined;
    if (tries) {
      ({ left, done } = tries);
      rest = rest.slice(0, plus);
    }
    let archIndex = arches.length;
    let architecture: string | undefined;
    const underscore = rest.lastIndexOf("_");
    if (underscore >= 0) {
      const word = rest.slice(underscore + 1);
      if (ARCHITECTURES.has(word)) {
        archIndex = arches.indexOf(word);
        if (archIndex < 0) continue;
        architecture = word;
      }
      rest = rest.slice(0, underscore);
    }
    if (rest === "" || !VERSION_CHARS.test(rest)) continue;
    const candidate: Candidate = {
      file,
      version: rest,
      archIndex,
      left,
      done,
      ...(architecture !== undefined ? { architecture } : {}),
      ...(tries ? { triesLeft: tries.left, triesDone: tries.done } : {}),
    };
    if (best === undefined || better(candidate, best) >= 0) best = candidate;
  }
  if (best === undefined) return undefined;
  const { archIndex: _a, left: _l, done: _d, ...pick } = best;
  return pick;
}
