// Reading the mount table (/proc/self/mountinfo) without running a program.
import { readFile } from "node:fs/promises";
import path from "node:path";

function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const points = new Set<string>();
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field) points.add(unescapeMountPath(field));
  }
  return points;
}

export async function isMountPoint(hostPath: string): Promise<boolean> {
  return (await mountPoints()).has(path.resolve(hostPath));
}
