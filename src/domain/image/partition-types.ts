// Partition type GUIDs of the Discoverable Partitions Specification that an extension image may
// carry (spec/formats.md section 2), and systemd's architecture names for the host.

export type Architecture = "x86-64" | "arm64" | "riscv64";

export const ARCHITECTURES: readonly Architecture[] = ["x86-64", "arm64", "riscv64"];

export type Designator =
  "root" | "root-verity" | "root-verity-sig" | "usr" | "usr-verity" | "usr-verity-sig";

export interface PartitionType {
  guid: string;
  /** The name systemd-repart gives this type, also used as the default label. */
  name: string;
  designator: Designator | "linux-generic" | "esp" | "xbootldr" | "swap" | "home" | "srv" | "var";
  architecture?: Architecture;
}

const TABLE: Record<Architecture, Record<Designator, string>> = {
  "x86-64": {
    root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    "root-verity": "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
    "root-verity-sig": "41092b05-9fc8-4523-994f-2def0408b176",
    usr: "8484680c-9521-48c6-9c11-b0720656f69e",
    "usr-verity": "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
    "usr-verity-sig": "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
  },
  arm64: {
    root: "b921b045-1df0-41c3-af44-4c6f280d3fae",
    "root-verity": "df3300ce-d69f-4c92-978c-9bfb0f38d820",
    "root-verity-sig": "6db69de6-29f4-4758-a7a5-962190f00ce3",
    usr: "b0e01050-ee5f-4390-949a-9101b17104e9",
    "usr-verity": "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e",
    "usr-verity-sig": "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a",
  },
  riscv64: {
    root: "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
    "root-verity": "b6ed5582-440b-4209-b8da-5ff7c419ea3d",
    "root-verity-sig": "efe0f087-ea8d-4469-821a-4c2a96a8386a",
    usr: "beaec34b-8442-439b-a40b-984381ed097d",
    "usr-verity": "8f1056be-9b05-47c4-81d6-be53128e5b54",
    "usr-verity-sig": "d2f9000a-7a18-453f-b5cd-4d32f77a7b32",
  },
};

/** The generic Linux data partition: a single one makes an image a "single-partition" image. */
export const LINUX_GENERIC_GUID = "0fc63daf-8483-4772-8e79-3d69d8477de4";

const OTHER_TYPES: PartitionType[] = [
  { guid: LINUX_GENERIC_GUID, name: "linux-generic", designator: "linux-generic" },
  { guid: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", name: "esp", designator: "esp" },
  { guid: "bc13c2ff-59e6-4262-a352-b275fd6f7172", name: "xbootldr", designator: "xbootldr" },
  { guid: "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", name: "swap", designator: "swap" },
  { guid: "933ac7e1-2eb4-4f13-b844-0e14e2aef915", name: "home", designator: "home" },
  { guid: "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", name: "srv", designator: "srv" },
  { guid: "4d21b016-b534-45c2-a9fb-5c16e091fd2d", name: "var", designator: "var" },
];

const BY_GUID = new Map<string, PartitionType>();
for (const arch of ARCHITECTURES) {
  for (const [designator, guid] of Object.entries(TABLE[arch]) as [Designator, string][]) {
    // repart's names put the verity suffix after the architecture: root-x86-64-verity.
    const [base, ...suffix] = designator.split("-");
    const name = [base, arch, ...suffix].join("-");
    BY_GUID.set(guid, { guid, name, designator, architecture: arch });
  }
}
for (const t of OTHER_TYPES) BY_GUID.set(t.guid, t);

export function partitionTypeOf(guid: string): PartitionType | undefined {
  return BY_GUID.get(guid.toLowerCase());
}

export function partitionTypeGuid(designator: Designator, architecture: Architecture): string {
  return TABLE[architecture][designator];
}

/** systemd's name for the architecture Node runs on, or undefined when we have no table for it. */
export function hostArchitecture(arch: string = process.arch): Architecture | undefined {
  switch (arch) {
    case "x64":
      return "x86-64";
    case "arm64":
      return "arm64";
    case "riscv64":
      return "riscv64";
    default:
      return undefined;
  }
}
