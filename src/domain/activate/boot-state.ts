// Which boot profile the node runs in, from the sentinels immucore leaves in /run/cos
// (<state>_mode). autoreset counts as recovery, as it does at boot (spec/kairos.md "ours" 5).
import { readdir } from "node:fs/promises";
import type { Root } from "../../util/root.js";
import { SENTINEL_DIR, type Profile } from "../store/layout.js";

export type BootState = "active" | "passive" | "recovery" | "autoreset" | "livecd" | "unknown";

export const BOOT_STATES: readonly BootState[] = [
  "active",
  "passive",
  "recovery",
  "autoreset",
  "livecd",
  "unknown",
];

/** The profile directory a boot state loads; livecd and unknown load nothing, not even common. */
export function profileForState(state: BootState): Profile | undefined {
  switch (state) {
    case "active":
    case "passive":
    case "recovery":
      return state;
    case "autoreset":
      return "recovery";
    default:
      return undefined;
  }
}

export interface SentinelState {
  /** Boot states whose sentinel exists, e.g. ["active"]. */
  states: BootState[];
  /** The profiles those states load. */
  profiles: Profile[];
  /** Whether the node booted through a UKI (sentinel uki_boot_mode). */
  uki: boolean;
}

export async function readSentinels(root: Root): Promise<SentinelState> {
  let names: string[] = [];
  try {
    names = await readdir(await root.readPath(SENTINEL_DIR));
  } catch {
    names = [];
  }
  const states = BOOT_STATES.filter((s) => names.includes(`${s}_mode`));
  const profiles = [
    ...new Set(states.map(profileForState).filter((p): p is Profile => p !== undefined)),
  ];
  return { states, profiles, uki: names.includes("uki_boot_mode") };
}

/** Whether `--now` may link an image enabled in `profile`: common always, others when booted so. */
export function isLiveProfile(profile: Profile, sentinels: SentinelState): boolean {
  return profile === "common" || sentinels.profiles.includes(profile);
}
