// Whiteouts, how a layer deletes what the layers below it left: `.wh.NAME` removes NAME (and all
// under it), `.wh..wh..opq` empties its directory. Install and build both read layers through it.

const PREFIX = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** What a whiteout entry does to the lower layers; paths are tree paths ("" is the root). */
export type Whiteout = { kind: "remove"; path: string } | { kind: "opaque"; dir: string };

/** The whiteout a layer entry at tree path `p` is, or undefined for an ordinary entry. */
export function whiteoutOf(p: string): Whiteout | undefined {
  const slash = p.lastIndexOf("/");
  const name = p.slice(slash + 1);
  if (!name.startsWith(PREFIX)) return undefined;
  const dir = slash === -1 ? "" : p.slice(0, slash);
  if (name === OPAQUE) return { kind: "opaque", dir };
  const victim = name.slice(PREFIX.length);
  // A bare `.wh.` names nothing; aimed at itself (whiteouts never enter a tree) it removes nothing.
  if (victim === "") return { kind: "remove", path: p };
  return { kind: "remove", path: dir === "" ? victim : `${dir}/${victim}` };
}

export function isWhiteout(p: string): boolean {
  return p.slice(p.lastIndexOf("/") + 1).startsWith(PREFIX);
}

/**
 * Whether a path a lower layer left is gone under `w`. An opaque directory keeps itself and
 * loses its contents; a removed path takes everything below it along.
 */
export function hides(w: Whiteout, lower: string): boolean {
  if (w.kind === "opaque") return w.dir === "" ? lower !== "" : lower.startsWith(`${w.dir}/`);
  return lower === w.path || lower.startsWith(`${w.path}/`);
}
