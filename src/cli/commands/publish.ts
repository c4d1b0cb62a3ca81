// `extctl publish IMAGE oci://REF`: push an extension image to a registry and print the pinned
// reference. The registry client loads only when the command runs.
import type { Command } from "commander";
import { UsageError } from "../../util/errors.js";
import { collect, contextFor } from "../options.js";
import { print, printJson } from "../render.js";

interface PublishFlags {
  platform?: string;
  index?: boolean;
  kind?: string;
  creds?: string;
  caCert?: string[];
  insecureRegistry?: string[];
  mountFrom?: string[];
  json?: boolean;
}

export function registerPublishCommand(program: Command): void {
  program
    .command("publish")
    .description("push an extension image to an OCI registry as an ORAS-compatible artifact")
    .argument("<image>", "the image file (NAME.sysext.raw or NAME.confext.raw)")
    .argument("<reference>", "where to push it: oci://REGISTRY/REPOSITORY[:TAG]")
    .option("--platform <os/arch>", "publish as this platform's entry of a multi-arch index")
    .option("--index", "add or replace this platform in the index already at the tag")
    .option("--kind <kind>", "sysext or confext (default: from the file name)")
    .option("--creds <user:pass>", "registry credentials")
    .option("--ca-cert <file>", "trust this CA certificate (PEM) too; repeatable", collect)
    .option(
      "--insecure-registry <host>",
      "reach this registry over plain http; repeatable",
      collect,
    )
    .option(
      "--mount-from <repository>",
      "try to mount the blob from this repository first; repeatable",
      collect,
    )
    .option("--json", "print the result as JSON")
    .action(async (image: string, reference: string, flags: PublishFlags, command: Command) => {
      if (flags.kind !== undefined && flags.kind !== "sysext" && flags.kind !== "confext") {
        throw new UsageError(`--kind must be sysext or confext, not "${flags.kind}"`);
      }
      const { publish } = await import("../../operations/publish.js");
      const ctx = contextFor(command);
      const result = await publish(ctx, image, reference, {
        ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
        ...(flags.index ? { index: true } : {}),
        ...(flags.kind !== undefined ? { kind: flags.kind as "sysext" | "confext" } : {}),
        ...(flags.creds !== undefined ? { creds: flags.creds } : {}),
        ...(flags.caCert ? { caCerts: flags.caCert } : {}),
        ...(flags.insecureRegistry ? { insecureRegistries: flags.insecureRegistry } : {}),
        ...(flags.mountFrom ? { mountFrom: flags.mountFrom } : {}),
      });
      if (flags.json) printJson(result);
      else print(result.pinned);
    });
}
