// `extctl build sysext|confext NAME SOURCE`: build a (signed) extension image from a directory,
// a rootfs archive or a container image, natively and reproducibly.
import type { Command } from "commander";
import { Argument, InvalidArgumentError } from "commander";
import {
  addFlags,
  boolFlag,
  choiceFlag,
  contextFor,
  defined,
  flagsOf,
  jsonFlag,
  listFlag,
  negatedFlag,
  numberFlag,
  textFlag,
  type Flag,
} from "../options.js";
import type { BuildOptions } from "../../operations/build.js";
import { humanBytes } from "../../util/progress.js";
import { print, printJson } from "../render.js";
import { DEFAULT_FORMAT, FORMATS, mkfsOf } from "../../domain/image/filesystem-registry.js";

function intArg(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

/**
 * The flags are BuildOptions fields of the same name and type, but for these four, which the
 * action renames or keeps: the spec is checked against BuildOptions, so the CLI declares no
 * second copy of it.
 */
type OwnFlags = "output" | "verity" | "insecureRegistry" | "json";
type BuildFlagSpec = { readonly [K in keyof BuildOptions]?: Flag<BuildOptions[K] | undefined> } & {
  readonly [K in OwnFlags]: Flag<unknown>;
};

const BUILD_FLAGS = {
  output: textFlag(
    "-o, --output <dir>",
    "directory to write the image to (default: the current directory)",
  ),
  privateKey: textFlag(
    "--private-key <key.pem>",
    "sign the root hash with this PEM key (needs --certificate)",
  ),
  certificate: textFlag("--certificate <cert.pem>", "certificate embedded in the signature"),
  arch: choiceFlag("--arch <arch>", "architecture of the image", ["amd64", "arm64", "riscv64"]),
  format: choiceFlag("--format <fs>", "filesystem", FORMATS, DEFAULT_FORMAT),
  compress: textFlag(
    "--compress <alg>",
    `compressor: ${FORMATS.map((f) => `${f} ${mkfsOf(f)?.compressHelp ?? ""}`).join("; ")}`,
  ),
  withOpt: boolFlag("--with-opt", "sysext: keep /opt as well as /usr"),
  serviceReload: boolFlag(
    "--service-reload",
    "set EXTENSION_RELOAD_MANAGER=1 (systemd reloads units on merge)",
  ),
  osId: textFlag("--os-id <id>", "ID= in the release file (default _any: any OS)"),
  sysextLevel: textFlag("--sysext-level <level>", "SYSEXT_LEVEL= the host must have", (o) =>
    o.conflicts("versionId"),
  ),
  versionId: textFlag("--version-id <v>", "VERSION_ID= the host must have"),
  version: textFlag("--version <v>", "the extension's own version (SYSEXT_VERSION_ID=)"),
  scope: textFlag("--scope <list>", 'SYSEXT_SCOPE=, e.g. "system portable" or "initrd"'),
  seed: textFlag(
    "--seed <uuid>",
    "seed for UUIDs and the verity salt (default: the one AuroraBoot uses)",
  ),
  verity: negatedFlag("--no-verity", "write a bare filesystem image without verity partitions"),
  verityBlockSize: numberFlag(
    "--verity-block-size <bytes>",
    "dm-verity block size (512 suits systemd 252-254)",
    (v) => Number(v),
    (o) => o.choices(["512", "4096"]),
  ),
  layers: choiceFlag("--layers <which>", "container images: use the last layer or all layers", [
    "last",
    "all",
  ]),
  base: textFlag("--base <ref>", "container images: build only what SOURCE adds over this image"),
  keepOwners: boolFlag("--keep-owners", "keep file owners (default: everything owned by root)"),
  include: listFlag(
    "--include <path>",
    "keep only this subtree of the source, e.g. usr/lib/firmware/nvidia (repeatable)",
  ),
  systemd: numberFlag(
    "--systemd <version>",
    "oldest systemd the image must work on; below 255 also writes the release file 252-254 look for",
    intArg,
  ),
  insecureRegistry: listFlag(
    "--insecure-registry <host>",
    "oci:// sources: reach this registry over plain http (repeatable)",
  ),
  creds: textFlag("--creds <user:pass>", "oci:// sources: registry credentials"),
  json: jsonFlag(),
} as const satisfies BuildFlagSpec;

export function registerBuildCommand(program: Command): void {
  addFlags(
    program
      .command("build")
      .description(
        "build a sysext or confext image from a directory, rootfs tar or container image",
      )
      .addArgument(new Argument("<kind>", "sysext or confext").choices(["sysext", "confext"]))
      .argument("<name>", "image name: the file becomes NAME.sysext.raw or NAME.confext.raw")
      .argument(
        "<source>",
        "a directory, a tar/tar.gz/tar.zst rootfs, oci-layout:DIR[:TAG], oci://REF or a docker save archive",
      ),
    BUILD_FLAGS,
  ).action(
    async (
      kind: "sysext" | "confext",
      name: string,
      source: string,
      _opts: unknown,
      command: Command,
    ) => {
      const flags = flagsOf(command, BUILD_FLAGS);
      const { buildImage } = await import("../../operations/build.js");
      const ctx = contextFor(command);
      // Flags named as BuildOptions fields pass through; the others are renamed here.
      const { output, verity, insecureRegistry, json: _json, ...same } = flags;
      const result = await buildImage(
        ctx,
        defined({
          kind,
          name,
          source,
          ...same,
          outputDir: output,
          withOpt: same.withOpt ?? false,
          serviceReload: same.serviceReload ?? false,
          noVerity: !verity,
          keepOwners: same.keepOwners ?? false,
          insecureRegistries: insecureRegistry,
        }),
      );
      if (flags.json) {
        printJson(result);
        return;
      }
      const rows: [string, string][] = [
        ["image", result.path],
        ["size", String(result.size)],
        ["sha256", result.sha256],
        ["format", `${result.format} (${result.compress})`],
        ["architecture", result.architecture],
        ["verity", result.verity ? (result.signed ? "signed" : "unsigned") : "none"],
      ];
      if (result.rootHash) rows.push(["root hash", result.rootHash]);
      if (result.certificateFingerprint) rows.push(["signer", result.certificateFingerprint]);
      rows.push(["release", result.releaseFiles.join(", ")]);
      if (result.include) rows.push(["included", result.include.join(", ")]);
      // Exact bytes as well as the rounded size: what the OS image can drop by shipping this.
      rows.push([
        "carries",
        `${result.carried.files} ${result.carried.files === 1 ? "file" : "files"}, ${result.carried.bytes} bytes (${humanBytes(result.carried.bytes)})`,
      ]);
      const width = Math.max(...rows.map(([k]) => k.length));
      print(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n"));
    },
  );
}
