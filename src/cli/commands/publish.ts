// `extctl publish IMAGE oci://REF`: push an extension image to a registry and print the pinned
// reference. The registry client loads only when the command runs.
import type { Command } from "commander";
import { UsageError } from "../../util/errors.js";
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
import { print, printJson } from "../render.js";

const PUBLISH_FLAGS = {
  platform: textFlag(
    "--platform <os/arch>",
    "publish as this platform's entry of a multi-arch index",
  ),
  index: boolFlag("--index", "add or replace this platform in the index already at the tag"),
  kind: textFlag("--kind <kind>", "sysext or confext (default: from the file name)"),
  creds: textFlag("--creds <user:pass>", "registry credentials"),
  caCert: listFlag("--ca-cert <file>", "trust this CA certificate (PEM) too; repeatable"),
  insecureRegistry: listFlag(
    "--insecure-registry <host>",
    "reach this registry over plain http; repeatable",
  ),
  mountFrom: listFlag(
    "--mount-from <repository>",
    "try to mount the blob from this repository first; repeatable",
  ),
  json: jsonFlag(),
} as const satisfies FlagSpec;

export function registerPublishCommand(program: Command): void {
  addFlags(
    program
      .command("publish")
      .description("push an extension image to an OCI registry as an ORAS-compatible artifact")
      .argument("<image>", "the image file (NAME.sysext.raw or NAME.confext.raw)")
      .argument("<reference>", "where to push it: oci://REGISTRY/REPOSITORY[:TAG]"),
    PUBLISH_FLAGS,
  ).action(async (image: string, reference: string, _opts: unknown, command: Command) => {
    const flags = flagsOf(command, PUBLISH_FLAGS);
    const kind = EXTENSION_KINDS.find((k) => k === flags.kind);
    if (flags.kind !== undefined && !kind) {
      throw new UsageError(`--kind must be sysext or confext, not "${flags.kind}"`);
    }
    const { publish } = await import("../../operations/publish.js");
    const ctx = contextFor(command);
    const result = await publish(
      ctx,
      defined({
        image,
        reference,
        platform: flags.platform,
        index: flags.index,
        kind: kind,
        creds: flags.creds,
        caCerts: flags.caCert,
        insecureRegistries: flags.insecureRegistry,
        mountFrom: flags.mountFrom,
      }),
    );
    if (flags.json) printJson(result);
    else print(result.pinned);
  });
}
