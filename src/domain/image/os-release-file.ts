// The os-release of another OS image, for `upgrade --for-os`: a host path naming the file itself
// or a root directory that holds etc/os-release or usr/lib/os-release (systemd's order).
import { stat } from "node:fs/promises";
import path from "node:path";
import { READ_CAPS, readBounded } from "../../util/bounded-read.js";
import { UsageError } from "../../util/errors.js";
import { parseOsRelease, type ReleaseFields } from "./os-release.js";

const RELEASE_PATHS = ["etc/os-release", "usr/lib/os-release"];

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined)) !== undefined;
}

/** The fields of the os-release at `where` (a file or an OS tree); refused without an ID. */
export async function readOsReleaseAt(where: string): Promise<ReleaseFields> {
  let file = where;
  if ((await stat(where).catch(() => undefined))?.isDirectory()) {
    const candidates = RELEASE_PATHS.map((p) => path.join(where, p));
    const found = (await Promise.all(candidates.map(exists))).indexOf(true);
    if (found < 0)
      throw new UsageError(`--for-os ${where}: no ${RELEASE_PATHS.join(" or ")} there`);
    file = candidates[found] as string;
  }
  const text = (
    await readBounded(file, { cap: READ_CAPS.small, what: "the --for-os os-release" })
  ).toString("utf8");
  const fields = parseOsRelease(text);
  if (!fields.ID) throw new UsageError(`--for-os ${where}: the os-release has no ID`);
  return fields;
}
