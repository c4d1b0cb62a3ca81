// node:zlib's CRC-32, loaded on first use: node:zlib requires all of node:stream (~3 ms at start-up),
// which checking a GPT header should not cost a command that inflates nothing.
let zlibCrc32: ((data: Uint8Array) => number) | undefined;

export function crc32(data: Uint8Array): number {
  zlibCrc32 ??= process.getBuiltinModule("node:zlib").crc32;
  return zlibCrc32(data);
}
