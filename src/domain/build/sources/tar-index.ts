// Finds where each member of an uncompressed tar lies (OCI layout tars, `docker save` archives),
// reading only the 512-byte headers, so a layer blob inside can be streamed as a byte range.
import { open } from "node:fs/promises";
import { ExtctlError, fsError } from "../../../util/errors.js";
import { treePath } from "../tree.js";

export interface TarMember {
  name: string;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
  type: string;
  linkname: string;
}

function field(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString("utf8");
}

function numberField(block: Buffer, start: number, length: number): number {
  const raw = block.subarray(start, start + length);
  if ((raw[0] ?? 0) & 0x80) {
    // GNU base-256 for sizes past 8 GiB.
    let n = 0;
    for (let i = 1; i < raw.length; i++) n = n * 256 + (raw[i] ?? 0);
    return n;
  }
  const text = field(block, start, length).trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function paxPath(data: Buffer): { path?: string; linkpath?: string; size?: number } {
  const out: { path?: string; linkpath?: string; size?: number } = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space === -1) break;
    const len = Number.parseInt(data.subarray(pos, space).toString("ascii"), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = data.subarray(space + 1, pos + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === "path") out.path = value;
    else if (key === "linkpath") out.linkpath = value;
    else if (key === "size") out.size = Number(value);
    pos += len;
  }
  return out;
}

/** Lists the members of an uncompressed tar file with their data offsets. */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (e) {
    throw fsError(e, `open ${file}`);
  }
  const members = new Map<string, TarMember>();
  try {
    const size = (await handle.stat()).size;
    let pos = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: ReturnType<typeof paxPath> = {};
    const block = Buffer.alloc(512);
    while (pos + 512 <= size) {
      await handle.read(block, 0, 512, pos);
      if (block.every((b) => b === 0)) break;
      if (field(block, 257, 5) !== "ustar" && !verifyChecksum(block)) {
        throw new ExtctlError("build", `${file} is not an uncompressed tar archive`, {
          hint: "give an OCI layout as a directory or a plain tar (e.g. `docker save -o x.tar`)",
        });
      }
      const type = String.fromCharCode(block[156] || 0x30);
      let memberSize = numberField(block, 124, 12);
      const dataAt = pos + 512;
      if (type === "x" || type === "L" || type === "K") {
        const data = Buffer.alloc(memberSize);
        await handle.read(data, 0, memberSize, dataAt);
        if (type === "x") pax = paxPath(data);
        else if (type === "L") longName = field(data, 0, data.length);
        else longLink = field(data, 0, data.length);
      } else if (type === "g") {
        // Global pax headers carry nothing we need.
      } else {
        const prefix = field(block, 345, 155);
        const shortName = field(block, 0, 100);
        const name = pax.path ?? longName ?? (prefix ? `${prefix}/${shortName}` : shortName);
        if (pax.size !== undefined) memberSize = pax.size;
        const normal = treePath(name, file);
        members.set(normal, {
          name: normal,
          offset: dataAt,
          size: memberSize,
          type,
          linkname: pax.linkpath ?? longLink ?? field(block, 157, 100),
        });
        pax = {};
        longName = undefined;
        longLink = undefined;
      }
      pos = dataAt + Math.ceil(memberSize / 512) * 512;
    }
  } finally {
    await handle.close();
  }
  return members;
}

function verifyChecksum(block: Buffer): boolean {
  const stored = numberField(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === stored;
}
