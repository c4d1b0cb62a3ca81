// The one table of what changed between systemd versions for merging extensions: each rule
// `check` applies names the version that introduced it here, nowhere else.
// Sources: systemd's src/shared/extension-util.c (extension_release_validate), src/basic/os-util.c
// (open_extension_release_at, path_extract_image_name), src/sysext/sysext.c, and the lanes
// (Debian 12: 252, Debian 13: 257, testing: 262) where the differential test runs.

export interface SystemdFeature {
  /** The first systemd version that has it. */
  since: number;
  /** One sentence for a rule's reason. */
  what: string;
}

export const SYSTEMD_FEATURES = {
  /** systemd-confext, CONFEXT_LEVEL, CONFEXT_SCOPE and /etc/extension-release.d. */
  confext: { since: 254, what: "systemd-confext" },
  /** `--image-policy=` for systemd-sysext/confext (and systemd-dissect). */
  imagePolicy: { since: 254, what: "--image-policy" },
  /** NAME.sysext.raw is called NAME (252 calls it NAME.sysext: host; 257, 262: lanes). */
  stripKindSuffix: {
    since: 255,
    what: "the .sysext.raw/.confext.raw suffix is not part of the name",
  },
  /**
   * extension_release_validate matches the image's ID against the host's ID_LIKE too: systemd
   * PR 37648 (merged for 258, May 2025) and backported to the 257 stable series; Debian 13's
   * 257.13 merges on ID_LIKE (lane), 252 does not. Only the major version can be read from a
   * root, so 257 counts as having it (an early 257.x without the backport would refuse).
   */
  idLike: { since: 257, what: "ID= may match the host's ID_LIKE=" },
  /**
   * open_extension_release_at's fallback: NAME_1.2.raw and NAME+k3s.raw may carry
   * extension-release.NAME (the name cut at the first _ or +) without the xattr. Added by
   * commit 37543971 (256), narrowed by PR 33607 (July 2024); 257 and 262 have it (lanes).
   */
  versionedNameFallback: {
    since: 256,
    what: "extension-release.NAME serves NAME_VERSION.raw and NAME+SUFFIX.raw",
  },
  /**
   * `systemd-sysext --root=DIR` takes the initrd scope from DIR/etc/initrd-release and ignores
   * SYSTEMD_IN_INITRD; 257 asks the running system (in_initrd()). Seen in the 262 lane; the
   * version between 258 and 262 that changed it is not verified.
   */
  rootInitrdRelease: { since: 262, what: "--root's own /etc/initrd-release decides the scope" },
  /**
   * How a DDI's partitions are chosen (domain/image/partition-choice.ts): 252 groups them by
   * architecture tier; from here each designator (root, usr, their verity and signature) is
   * filled on its own and root/usr must share an architecture. Seen on 254 (Debian 12
   * backports), 257 and 262 against 252; 253 was not available to run.
   */
  perDesignatorPartitions: {
    since: 253,
    what: "each partition designator is chosen on its own (best architecture, newest label)",
  },
  /**
   * Loop devices for image files get the GPT's sector size probed (probe_sector_size); before,
   * a 4096-byte-sector GPT is not seen on a 512-byte loop device.
   */
  gptSectorSizeProbe: { since: 254, what: "4096-byte-sector GPT images" },
  /** systemd-repart --make-ddi=sysext|confext|portable. */
  repartMakeDdi: { since: 255, what: "systemd-repart --make-ddi" },
  /** systemd-dissect --validate (with --image-policy). */
  dissectValidate: { since: 254, what: "systemd-dissect --validate" },
} as const satisfies Record<string, SystemdFeature>;

export type SystemdFeatureName = keyof typeof SYSTEMD_FEATURES;

/** The version check applies when the root's cannot be found. */
export const NEWEST_SYSTEMD = 262;

export function hasFeature(version: number, feature: SystemdFeatureName): boolean {
  return version >= SYSTEMD_FEATURES[feature].since;
}

/** "ID= may match the host's ID_LIKE= (systemd 256+)": a rule's citation. */
export function cite(feature: SystemdFeatureName): string {
  const f = SYSTEMD_FEATURES[feature];
  return `${f.what} (systemd ${f.since}+)`;
}
