// `extctl build sysext|confext NAME SOURCE`: build a (signed) extension image from a directory,
// a rootfs archive or a container image, natively and reproducibly.
import type { Command } from "commander";
import { Argument, InvalidArgumentError, Option } from "commander";
import { collect, contextFor } from "../options.js";
import { humanBytes } from "../../util/progress.js";
import { print, printJson } from "../render.js";
import {
  DEFAULT_FORMAT,
  FORMATS,
  mkfsOf,
  type FilesystemFormat,
} from "../../domain/image/filesystem-registry.js";

function intArg(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

interface BuildFlags {
  output?: string;
  privateKey?: string;
  certificate?: string;
  arch?: string;
  format?: FilesystemFormat;
  compress?: string;
  withOpt?: boolean;
  serviceReload?: boolean;
  osId?: string;
  sysextLevel?: string;
  versionId?: string;
  version?: string;
  scope?: string;
  seed?: string;
  verity: boolean;
  verityBlockSize?: number;
  layers?: "last" | "all";
  base?: string;
  keepOwners?: boolean;
  include?: string[];
  systemd?: number;
  insecureRegistry?: string[];
  creds?: string;
  json?: boolean;
}

export function registerBuildCommand(program: Command): void {
  program
    .command("build")
    .description("build a sysext or confext image from a directory, rootfs tar or container image")
    .addArgument(new Argument("<kind>", "sysext or confext").choices(["sysext", "confext"]))
    .argument("<name>", "image name: the file becomes NAME.sysext.raw or NAME.confext.raw")
    .argument(
      "<source>",
      "a directory, a tar/tar.gz/tar.zst rootfs, oci-layout:DIR[:TAG], oci://REF or a docker save archive",
    )
    .option(
      "-o, --output <dir>",
      "directory to write the image to (default: the current directory)",
    )
    .option("--private-key <key.pem>", "sign the root hash with this PEM key (needs --certificate)")
    .option("--certificate <cert.pem>", "certificate embedded in the signature")
    .addOption(
      new Option("--arch <arch>", "architecture of the image").choices([
        "amd64",
        "arm64",
        "riscv64",
      ]),
    )
    .addOption(new Option("--format <fs>", "filesystem").choices(FORMATS).default(DEFAULT_FORMAT))
    .option(
      "--compress <alg>",
      `compressor: ${FORMATS.map((f) => `${f} ${mkfsOf(f)?.compressHelp ?? ""}`).join("; ")}`,
    )
    .option("--with-opt", "sysext: keep /opt as well as /usr")
    .option("--service-reload", "set EXTENSION_RELOAD_MANAGER=1 (systemd reloads units on merge)")
    .option("--os-id <id>", "ID= in the release file (default _any: any OS)")
    .addOption(
      new Option("--sysext-level <level>", "SYSEXT_LEVEL= the host must have").conflicts(
        "versionId",
      ),
    )
    .option("--version-id <v>", "VERSION_ID= the host must have")
    .option("--version <v>", "the extension's own version (SYSEXT_VERSION_ID=)")
    .option("--scope <list>", 'SYSEXT_SCOPE=, e.g. "system portable" or "initrd"')
    .option(
      "--seed <uuid>",
      "seed for UUIDs and the verity salt (default: the one AuroraBoot uses)",
    )
    .option("--no-verity", "write a bare filesystem image without verity partitions")
    .addOption(
      new Option("--verity-block-size <bytes>", "dm-verity block size (512 suits systemd 252-254)")
        .choices(["512", "4096"])
        .argParser((v) => Number(v)),
    )
    .addOption(
      new Option("--layers <which>", "container images: use the last layer or all layers").choices([
        "last",
        "all",
      ]),
    )
    .option("--base <ref>", "container images: build only what SOURCE adds over this image")
    .option("--keep-owners", "keep file owners (default: everything owned by root)")
    .option(
      "--include <path>",
      "keep only this subtree of the source, e.g. usr/lib/firmware/nvidia (repeatable)",
      collect,
    )
    .option(
      "--systemd <version>",
      "oldest systemd the image must work on; below 255 also writes the release file 252-254 look for",
      intArg,
    )
    .option(
      "--insecure-registry <host>",
      "oci:// sources: reach this registry over plain http (repeatable)",
      collect,
    )
    .option("--creds <user:pass>", "oci:// sources: registry credentials")
    .option("--json", "print the result as JSON")
    .action(
      async (
        kind: "sysext" | "confext",
        name: string,
        source: string,
        flags: BuildFlags,
        command: Command,
      ) => {
        const { buildImage } = await import("../../operations/build.js");
        const ctx = contextFor(command);
        const result = await buildImage(ctx, {
          kind,
          name,
          source,
          ...(flags.output !== undefined ? { outputDir: flags.output } : {}),
          ...(flags.privateKey !== undefined ? { privateKey: flags.privateKey } : {}),
          ...(flags.certificate !== undefined ? { certificate: flags.certificate } : {}),
          ...(flags.arch !== undefined ? { arch: flags.arch } : {}),
          ...(flags.format !== undefined ? { format: flags.format } : {}),
          ...(flags.compress !== undefined ? { compress: flags.compress } : {}),
          withOpt: flags.withOpt ?? false,
          serviceReload: flags.serviceReload ?? false,
          ...(flags.osId !== undefined ? { osId: flags.osId } : {}),
          ...(flags.sysextLevel !== undefined ? { sysextLevel: flags.sysextLevel } : {}),
          ...(flags.versionId !== undefined ? { versionId: flags.versionId } : {}),
          ...(flags.version !== undefined ? { version: flags.version } : {}),
          ...(flags.scope !== undefined ? { scope: flags.scope } : {}),
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          noVerity: !flags.verity,
          ...(flags.verityBlockSize !== undefined
            ? { verityBlockSize: flags.verityBlockSize }
            : {}),
          ...(flags.layers !== undefined ? { layers: flags.layers } : {}),
          ...(flags.base !== undefined ? { base: flags.base } : {}),
          keepOwners: flags.keepOwners ?? false,
          ...(flags.include ? { include: flags.include } : {}),
          ...(flags.systemd !== undefined ? { systemd: flags.systemd } : {}),
          ...(flags.insecureRegistry ? { insecureRegistries: flags.insecureRegistry } : {}),
          ...(flags.creds !== undefined ? { creds: flags.creds } : {}),
        });
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
