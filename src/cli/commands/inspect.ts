// `extctl inspect IMAGE [--tree|--files] [--json]`: what an extension image holds, read without
// mounting it.
import type { Command } from "commander";
import type { InspectResult } from "../../operations/inspect.js";
import { ExtctlError } from "../../util/errors.js";
import { stdoutStream } from "../../util/stdio.js";
import { EXTENSION_KINDS } from "../../domain/store/layout.js";
import {
  addFlags,
  boolFlag,
  contextFor,
  defined,
  flagsOf,
  jsonFlag,
  listFlag,
  textFlag,
  type FlagSpec,
} from "../options.js";
import { escapeControl } from "../../util/escape.js";
import { print, printJsonAs, renderTable } from "../render.js";
import { READABLE } from "../../domain/image/filesystem-registry.js";

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

function renderInspect(r: InspectResult): string {
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`${(k + ":").padEnd(14)}${escapeControl(v)}`);
  kv("image", `${r.path} (${size(r.size)})`);
  kv(
    "kind",
    `${r.kind}${r.architecture ? `, ${r.architecture}` : ""}${r.sectorSize ? `, ${r.sectorSize}-byte sectors` : ""}`,
  );
  kv(
    "filesystem",
    `${r.filesystem.type}, compression ${r.filesystem.compression}, ${r.filesystem.blockSize}-byte blocks`,
  );
  kv(
    "extension",
    `${r.extensionKind}, named "${r.names.systemd255}" by systemd 255+, "${r.names.systemd252}" by 252`,
  );
  for (const w of r.warnings) kv("warning", w);
  if (r.partitions.length > 0) {
    out.push("");
    out.push(
      renderTable(r.partitions, [
        { header: "#", value: (p) => String(p.index), align: "right" },
        { header: "TYPE", value: (p) => p.type },
        { header: "LABEL", value: (p) => p.label },
        { header: "UUID", value: (p) => p.uuid },
        { header: "OFFSET", value: (p) => String(p.offset), align: "right" },
        { header: "SIZE", value: (p) => size(p.size), align: "right" },
        { header: "FLAGS", value: (p) => p.flags.join(",") },
        { header: "ROLE", value: (p) => p.role ?? "" },
      ]).trimEnd(),
    );
  }
  out.push("");
  if (r.release) {
    kv(
      "release",
      `${r.release.path.slice(1)}${r.release.match === "fallback" ? " (strict=false fallback)" : ""}`,
    );
    for (const [k, v] of Object.entries(r.release.fields))
      out.push(`  ${escapeControl(k)}=${escapeControl(v)}`);
  } else kv("release", `none: ${r.releaseProblem ?? "not found"}`);
  if (r.verity) {
    kv(
      "verity",
      `${r.verity.source}${r.verity.hashAlgorithm ? `, ${r.verity.hashAlgorithm}` : ""}`,
    );
    if (r.verity.rootHash)
      out.push(`  root hash: ${r.verity.rootHash} (from ${r.verity.rootHashSource})`);
    if (r.verity.dataBlockSize)
      out.push(
        `  blocks: ${r.verity.dataBlocks} data blocks of ${r.verity.dataBlockSize}, hash blocks ${r.verity.hashBlockSize}`,
      );
    if (r.verity.salt !== undefined) out.push(`  salt: ${r.verity.salt || "(none)"}`);
    if (r.verity.uuid) out.push(`  uuid: ${r.verity.uuid}`);
  } else kv("verity", "none");
  if (r.signature) {
    kv("signature", `${r.signature.source}, ${r.signature.status}`);
    if (r.signature.trust) out.push(`  ${r.signature.trust}`);
    if (r.signature.signer) {
      out.push(`  signer: ${r.signature.signer.subject}`);
      out.push(`  certificate SHA-256: ${r.signature.signer.fingerprint}`);
    } else if (r.signature.certificateFingerprint)
      out.push(`  certificate SHA-256: ${r.signature.certificateFingerprint}`);
  } else kv("signature", "none");
  out.push("");
  const t = r.tree;
  if (t)
    kv(
      "tree",
      `${t.entries} entries: ${t.files} files (${size(t.totalFileSize)}), ${t.directories} directories, ${t.symlinks} symlinks, ${t.other} other`,
    );
  else kv("tree", "not read (--tree for a summary, --files for every file)");
  if (r.files) {
    out.push(
      renderTable(r.files, [
        { header: "MODE", value: (f) => f.mode },
        { header: "OWNER", value: (f) => `${f.uid}/${f.gid}` },
        { header: "SIZE", value: (f) => String(f.size), align: "right" },
        {
          header: "PATH",
          value: (f) => f.path + (f.target !== undefined ? ` -> ${f.target}` : ""),
        },
        {
          header: "XATTRS",
          value: (f) =>
            Object.entries(f.xattrs ?? {})
              .map(([k, v]) => `${k}=${v.length > 40 ? v.slice(0, 37) + "..." : v}`)
              .join(" "),
        },
      ]).trimEnd(),
    );
  } else if (t) {
    for (const d of t.topDirectories)
      out.push(
        `  ${d.path.padEnd(30)} ${String(d.entries).padStart(7)} entries ${size(d.size).padStart(11)}`,
      );
  }
  kv("bytes read", String(r.bytesRead));
  return out.join("\n");
}

const INSPECT_FLAGS = {
  tree: boolFlag("--tree", "walk the whole tree for a summary: counts, sizes, top directories"),
  files: boolFlag("--files", "list every file (with xattrs), with the tree summary"),
  kind: textFlag("--kind <kind>", "sysext or confext (default: from the file name and content)"),
  trust: listFlag(
    "--trust <file|dir>",
    "also trust these certificates when checking the signature (repeatable)",
  ),
  json: jsonFlag(),
  cat: textFlag(
    "--cat <path>",
    "write the bytes of one file in the image to stdout (symlinks followed inside the image only)",
  ),
} as const satisfies FlagSpec;

export function registerInspectCommand(program: Command): void {
  addFlags(
    program
      .command("inspect")
      .description(
        "show what an extension image holds without mounting it: partitions, filesystem, release file, verity, signer and files",
      )
      .argument("<image>", `the image file (.raw DDI or bare ${READABLE.join("/")})`),
    INSPECT_FLAGS,
  ).action(async (image: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, INSPECT_FLAGS);
    if (opts.cat !== undefined) {
      if (opts.files || opts.tree || opts.json)
        throw new ExtctlError(
          "usage",
          "--cat writes file bytes; it cannot be combined with --files, --tree or --json",
        );
      const { catImageFile } = await import("../../operations/cat.js");
      await catImageFile(contextFor(command), { image, path: opts.cat, out: stdoutStream() });
      return;
    }
    const kind = EXTENSION_KINDS.find((k) => k === opts.kind);
    if (opts.kind !== undefined && !kind)
      throw new ExtctlError("usage", `--kind must be sysext or confext, not ${opts.kind}`);
    const { inspectImage } = await import("../../operations/inspect.js");
    const result = await inspectImage(
      contextFor(command),
      defined({
        image,
        files: opts.files ?? false,
        tree: opts.tree ?? false,
        kind: kind,
        trust: opts.trust ?? [],
      }),
    );
    if (opts.json) await printJsonAs("inspect", result);
    else print(renderInspect(result));
  });
}
