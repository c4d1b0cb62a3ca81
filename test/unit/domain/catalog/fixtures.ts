// Catalogs in Kairos's releases.json shape, made small for tests.
import { createHash } from "node:crypto";

/** A pinned reference for NAME@TAG on ARCH (a digest derived from the three). */
export function ref(name: string, tag: string, arch: string, kind = "sysext"): string {
  const digest = createHash("sha256").update(`${kind}/${name}/${tag}/${arch}`).digest("hex");
  return `ghcr.io/kairos-io/hadron-layers/${kind}/${name}@sha256:${digest}`;
}

export interface TagSpec {
  tag: string;
  arches?: string[];
  confext?: string[];
  rollout?: number;
}

export function tagJson(name: string, spec: TagSpec): Record<string, unknown> {
  const arches = spec.arches ?? ["amd64", "arm64"];
  return {
    tag: spec.tag,
    digest: `sha256:${createHash("sha256").update(spec.tag).digest("hex")}`,
    created: "2026-09-01T08:22:48Z",
    sysext: Object.fromEntries(arches.map((a) => [a, { oci: ref(name, spec.tag, a) }])),
    ...(spec.confext
      ? {
          confext: Object.fromEntries(
            spec.confext.map((a) => [a, { oci: ref(name, spec.tag, a, "confext") }]),
          ),
        }
      : {}),
    ...(spec.rollout === undefined ? {} : { rollout: { percent: spec.rollout } }),
  };
}

export function catalogJson(
  layers: { name: string; latest?: string; tags: (string | TagSpec)[] }[],
  generated = "2026-09-01T08:24:03Z",
): Record<string, unknown> {
  return {
    generated,
    repo: "kairos-io/hadron-layers",
    toolchain: "v0.5.1",
    layers: layers.map((l) => ({
      name: l.name,
      title: l.name,
      description: `the ${l.name} extension`,
      image: `ghcr.io/kairos-io/hadron-layers/${l.name}`,
      ...(l.latest === undefined ? {} : { latest: l.latest }),
      tags: l.tags.map((t) => tagJson(l.name, typeof t === "string" ? { tag: t } : t)),
    })),
  };
}

export function bytesOf(json: unknown): Buffer {
  return Buffer.from(JSON.stringify(json, null, 2));
}
