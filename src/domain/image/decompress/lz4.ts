// LZ4 block (not frame) decoder for squashfs and erofs data: raw sequences of literals and
// back-references, with every length and offset checked against the output bound.
import { ExtctlError } from "../../../util/errors.js";

function corrupt(why: string): ExtctlError {
  return new ExtctlError("format", `an LZ4 block in the image is corrupt: ${why}`, {
    hint: "the image is damaged; download or build it again",
  });
}

/**
 * Decodes one LZ4 block into at most `maxOutput` bytes. With `partial`, decoding stops quietly
 * once `maxOutput` bytes exist (erofs stores clusters whose tail belongs to the next extent).
 */
export function lz4DecompressBlock(input: Buffer, maxOutput: number, partial = false): Buffer {
  const out = Buffer.allocUnsafe(maxOutput);
  let ip = 0;
  let op = 0;
  const end = input.length;
  const readLength = (base: number): number => {
    let len = base;
    if (base === 15) {
      let b: number;
      do {
        if (ip >= end) throw corrupt("a length runs past the end of the block");
        b = input[ip++] as number;
        len += b;
        // A partial decode may stop well before the block's end (erofs -E dedupe).
        if (len > (partial ? 255 * end : maxOutput) + 0xffff)
          throw corrupt("a length is larger than the block");
      } while (b === 255);
    }
    return len;
  };
  while (ip < end) {
    const token = input[ip++] as number;
    const literals = readLength(token >> 4);
    if (ip + literals > end) throw corrupt("literals run past the end of the block");
    if (op + literals > maxOutput) {
      if (partial) {
        input.copy(out, op, ip, ip + (maxOutput - op));
        return out;
      }
      throw corrupt(`it inflates past its size of ${maxOutput} bytes`);
    }
    input.copy(out, op, ip, ip + literals);
    ip += literals;
    op += literals;
    if (ip >= end) break; // the last sequence has literals only
    if (partial && op === maxOutput) return out;
    if (ip + 2 > end) throw corrupt("a match offset is cut off");
    const offset = (input[ip] as number) | ((input[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw corrupt("a match points before the start of the data");
    let length = readLength(token & 15) + 4;
    if (op + length > maxOutput) {
      if (!partial) throw corrupt(`it inflates past its size of ${maxOutput} bytes`);
      length = maxOutput - op;
    }
    let from = op - offset;
    if (offset >= length) {
      out.copy(out, op, from, from + length);
      op += length;
    } else {
      for (let k = 0; k < length; k++) out[op++] = out[from++] as number;
    }
    if (partial && op === maxOutput) return out;
  }
  return out.subarray(0, op);
}

const WINDOW = 64 * 1024;

/**
 * Decodes an LZ4 block that inflates to `outputSize` bytes in chunks of at most `chunkSize`,
 * keeping only the 64 KiB window matches may reach back into: erofs pclusters can inflate to
 * hundreds of MiB. Decoding stops once `outputSize` bytes exist.
 */
export function* lz4DecompressChunks(
  input: Buffer,
  outputSize: number,
  chunkSize = 1024 * 1024,
): Generator<Buffer> {
  if (outputSize <= chunkSize) {
    const out = lz4DecompressBlock(input, outputSize, true);
    if (out.length !== outputSize) throw corrupt(`it holds ${out.length} bytes, not ${outputSize}`);
    yield out;
    return;
  }
  const buf = Buffer.allocUnsafe(WINDOW + chunkSize);
  // Output starts after an (unused) window so every flush yields at most chunkSize bytes.
  let op = WINDOW; // write position in buf
  let flushed = WINDOW; // start of the bytes in buf not yet yielded
  let produced = 0; // bytes yielded so far
  const pending: Buffer[] = [];
  const total = () => produced + (op - flushed);
  const flush = () => {
    pending.push(Buffer.from(buf.subarray(flushed, op)));
    produced += op - flushed;
    buf.copy(buf, 0, op - WINDOW, op);
    op = WINDOW;
    flushed = WINDOW;
  };
  let ip = 0;
  const end = input.length;
  const readLength = (base: number): number => {
    let len = base;
    if (base === 15) {
      let b: number;
      do {
        if (ip >= end) throw corrupt("a length runs past the end of the block");
        b = input[ip++] as number;
        len += b;
        // Not outputSize: an erofs extent may want only the start of what a block holds
        // (-E dedupe). Each length byte stands for at most 255 bytes of output.
        if (len > 255 * end + 0xffff) throw corrupt("a length is larger than the block");
      } while (b === 255);
    }
    return len;
  };
  while (ip < end && total() < outputSize) {
    const token = input[ip++] as number;
    let literals = readLength(token >> 4);
    if (ip + literals > end) throw corrupt("literals run past the end of the block");
    literals = Math.min(literals, outputSize - total());
    while (literals > 0) {
      if (op === buf.length) flush();
      const take = Math.min(literals, buf.length - op);
      input.copy(buf, op, ip, ip + take);
      ip += take;
      op += take;
      literals -= take;
    }
    yield* pending.splice(0);
    if (ip >= end || total() >= outputSize) break;
    if (ip + 2 > end) throw corrupt("a match offset is cut off");
    const offset = (input[ip] as number) | ((input[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > total())
      throw corrupt("a match points before the start of the data");
    let length = Math.min(readLength(token & 15) + 4, outputSize - total());
    while (length > 0) {
      if (op === buf.length) flush();
      const take = Math.min(length, buf.length - op);
      for (let k = 0; k < take; k++) {
        buf[op] = buf[op - offset] as number;
        op++;
      }
      length -= take;
    }
    yield* pending.splice(0);
  }
  if (total() !== outputSize) throw corrupt(`it holds ${total()} bytes, not ${outputSize}`);
  if (op > flushed) yield Buffer.from(buf.subarray(flushed, op));
}
