// Where things live on a Kairos node (spec/kairos.md section 1): the store of downloaded images,
// its profile directories of symlinks, and the runtime directory systemd merges from.

export type ExtensionKind = "sysext" | "confext";

export const EXTENSION_KINDS: readonly ExtensionKind[] = ["sysext", "confext"];

export type Profile = "active" | "passive" | "recovery" | "common";

export const PROFILES: readonly Profile[] = ["active", "passive", "recovery", "common"];

export interface KindLayout {
  kind: ExtensionKind;
  /** Node path of the store, e.g. /var/lib/kairos/extensions. */
  store: string;
  /** Node path systemd merges from, e.g. /run/extensions. */
  runtime: string;
  /** The systemd unit restarted to refresh on a systemd host. */
  unit: string;
  /** The systemd tool that merges this kind. */
  tool: "systemd-sysext" | "systemd-confext";
  /** Node paths of the hierarchies this kind may touch. */
  hierarchies: readonly string[];
  /** Node directory holding release files inside an image. */
  releaseDir: string;
}

export const LAYOUTS: Readonly<Record<ExtensionKind, KindLayout>> = {
  sysext: {
    kind: "sysext",
    store: "/var/lib/kairos/extensions",
    runtime: "/run/extensions",
    unit: "systemd-sysext.service",
    tool: "systemd-sysext",
    hierarchies: ["/usr", "/opt"],
    releaseDir: "/usr/lib/extension-release.d",
  },
  confext: {
    kind: "confext",
    store: "/var/lib/kairos/confexts",
    runtime: "/run/confexts",
    unit: "systemd-confext.service",
    tool: "systemd-confext",
    hierarchies: ["/etc"],
    releaseDir: "/etc/extension-release.d",
  },
};

export function profileDir(kind: ExtensionKind, profile: Profile): string {
  return `${LAYOUTS[kind].store}/${profile}`;
}

/** Sentinels immucore writes at boot: /run/cos/<state>_mode. */
export const SENTINEL_DIR = "/run/cos";

/** The lock that serialises extctl runs on one root. */
export const LOCK_FILE = "/run/lock/extctl.lock";
