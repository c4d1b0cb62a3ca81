// LZO1X decoder (the format squashfs calls "lzo"; all lzo1x compression levels decode the same),
// written from the bitstream description in the Linux kernel's lzo documentation.
import { ExtctlError } from "../../../util/errors.js";

function corrupt(why: string): ExtctlError {
  return new ExtctlError("format", `an LZO block in the image is corrupt: ${why}`, {
    hint: "the image is damaged; download or build it again",
  });
}

export function lzoDecompressBlock(input: Buffer, maxOutput: number): Buffer {
  const out = Buffer.allocUnsafe(maxOutput);
  let ip = 0;
  let op = 0;
  const byte = (): number => {
    if (ip >= input.length) throw corrupt("an instruction runs past the end of the block");
    return input[ip++] as number;
  };
  // Long lengths: each zero byte adds 255, the first non-zero byte ends the run.
  const extended = (base: number): number => {
    let n = base;
    let b = byte();
    while (b === 0) {
      n += 255;
      if (n > maxOutput) throw corrupt("a length is larger than the block");
      b = byte();
    }
    return n + b;
  };
  const literals = (count: number) => {
    if (ip + count > input.length) throw corrupt("literals run past the end of the block");
    if (op + count > maxOutput) throw corrupt(`it inflates past its size of ${maxOutput} bytes`);
    input.copy(out, op, ip, ip + count);
    ip += count;
    op += count;
  };
  const match = (distance: number, length: number) => {
    if (distance > op) throw corrupt("a match points before the start of the data");
    if (op + length > maxOutput) throw corrupt(`it inflates past its size of ${maxOutput} bytes`);
    let from = op - distance;
    for (let k = 0; k < length; k++) out[op++] = out[from++] as number;
  };

  let state = 0;
  if (input.length > 0 && (input[0] as number) > 17) {
    const t = byte() - 17;
    literals(t);
    state = t < 4 ? t : 4;
  }
  for (;;) {
    const inst = byte();
    let next: number;
    if (inst < 16) {
      if (state === 0) {
        literals((inst === 0 ? extended(15) : inst) + 3);
        state = 4;
        continue;
      }
      const h = byte();
      if (state < 4) match((h << 2) + (inst >> 2) + 1, 2);
      else match((h << 2) + (inst >> 2) + 2049, 3);
      next = inst & 3;
    } else if (inst < 32) {
      const len = (inst & 7) === 0 ? extended(7) + 2 : (inst & 7) + 2;
      const le = byte() | (byte() << 8);
      const distance = 16384 + ((inst & 8) << 11) + (le >> 2);
      if (distance === 16384) break; // end-of-stream marker
      match(distance, len);
      next = le & 3;
    } else if (inst < 64) {
      const len = (inst & 31) === 0 ? extended(31) + 2 : (inst & 31) + 2;
      const le = byte() | (byte() << 8);
      match((le >> 2) + 1, len);
      next = le & 3;
    } else if (inst < 128) {
      const h = byte();
      match((h << 3) + ((inst >> 2) & 7) + 1, 3 + ((inst >> 5) & 1));
      next = inst & 3;
    } else {
      const h = byte();
      match((h << 3) + ((inst >> 2) & 7) + 1, 5 + ((inst >> 5) & 3));
      next = inst & 3;
    }
    literals(next);
    state = next;
  }
  return out.subarray(0, op);
}
