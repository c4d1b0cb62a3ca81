// An LZMA decoder written for extctl (no native addon, so the one-file build carries it): the
// range decoder and LZMA model shared by squashfs' .lzma blocks, erofs' MicroLZMA and xz's LZMA2.
// Output goes into one buffer sized by the caller's bound, which is also the dictionary.
import { ExtctlError } from "../../../util/errors.js";

export function lzmaCorrupt(kind: string, why: string): ExtctlError {
  return new ExtctlError("format", `a ${kind} block in the image is corrupt: ${why}`, {
    hint: "the image is damaged; download or build it again",
  });
}

const PROB_INIT = 1024;
const STATES = 12;
const POS_STATES_MAX = 16;
const END_POS_MODEL_INDEX = 14;
const FULL_DISTANCES = 128;
const MATCH_MIN_LEN = 2;
/** A distance of 0xFFFFFFFF is the end-of-stream marker. */
const END_MARKER = 0xffffffff;

// Offsets of each probability table in one Uint16Array.
const IS_MATCH = 0;
const IS_REP = IS_MATCH + STATES * POS_STATES_MAX;
const IS_REP_G0 = IS_REP + STATES;
const IS_REP_G1 = IS_REP_G0 + STATES;
const IS_REP_G2 = IS_REP_G1 + STATES;
const IS_REP0_LONG = IS_REP_G2 + STATES;
const POS_SLOT = IS_REP0_LONG + STATES * POS_STATES_MAX;
const SPEC_POS = POS_SLOT + 4 * 64;
const ALIGN = SPEC_POS + 1 + FULL_DISTANCES - END_POS_MODEL_INDEX;
// A length coder: choice, choice2, low[16][8], mid[16][8], high[256].
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + POS_STATES_MAX * 8;
const LEN_HIGH = LEN_MID + POS_STATES_MAX * 8;
const LEN_CODER_SIZE = LEN_HIGH + 256;
const LEN_CODER = ALIGN + 16;
const REP_LEN_CODER = LEN_CODER + LEN_CODER_SIZE;
const LITERAL = REP_LEN_CODER + LEN_CODER_SIZE;

/** lc, lp and pb, from the properties byte ((pb * 5 + lp) * 9 + lc). */
export interface LzmaProperties {
  lc: number;
  lp: number;
  pb: number;
}

export function decodeProperties(kind: string, byte: number): LzmaProperties {
  if (byte >= 9 * 5 * 5) throw lzmaCorrupt(kind, `properties byte 0x${byte.toString(16)}`);
  const lc = byte % 9;
  const rest = Math.floor(byte / 9);
  return { lc, lp: rest % 5, pb: Math.floor(rest / 5) };
}

/**
 * Decodes LZMA into `out`. The range decoder reads `input` from `inPos` up to `inEnd`; a stream
 * that needs more than a few bytes past its end (which only padding could explain) is corrupt.
 */
export class LzmaDecoder {
  private probs = new Uint16Array(0);
  private lc = 0;
  private lp = 0;
  private pb = 0;
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  private range = 0;
  private code = 0;
  private input: Uint8Array = new Uint8Array(0);
  inPos = 0;
  private inEnd = 0;
  private overrun = 0;
  /** Where the output (and so the dictionary) starts: matches may not reach before it. */
  dictStart = 0;
  outPos = 0;

  constructor(
    private readonly kind: string,
    readonly out: Uint8Array,
  ) {}

  setProperties(props: LzmaProperties): void {
    if (props.lc + props.lp > 4 && this.kind === "xz")
      throw lzmaCorrupt(this.kind, "lc + lp is more than 4");
    const size = LITERAL + (0x300 << (props.lc + props.lp));
    if (this.probs.length !== size) this.probs = new Uint16Array(size);
    this.lc = props.lc;
    this.lp = props.lp;
    this.pb = props.pb;
  }

  /** Probabilities back to even, state and distances to zero (a new stream or LZMA2 chunk). */
  resetState(): void {
    this.probs.fill(PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }

  /**
   * Starts the range decoder on input[start, end). `firstByteGiven`: the stream's first byte,
   * always 0 in LZMA, has already been taken (MicroLZMA stores the properties there).
   */
  startRange(input: Uint8Array, start: number, end: number, firstByteGiven = false): void {
    this.input = input;
    this.inPos = start;
    this.inEnd = end;
    this.overrun = 0;
    if (!firstByteGiven && this.next() !== 0)
      throw lzmaCorrupt(this.kind, "the range coder does not start with 0");
    let code = 0;
    for (let i = 0; i < 4; i++) code = code * 256 + this.next();
    this.code = code;
    this.range = 0xffffffff;
  }

  /** Input bytes past the end that the decoder had to read as zero. */
  get overread(): number {
    return this.overrun;
  }

  private next(): number {
    if (this.inPos < this.inEnd) return this.input[this.inPos++] as number;
    // The range decoder reads ahead up to 4 bytes; more than that is not padding.
    if (++this.overrun > 4) throw lzmaCorrupt(this.kind, "the compressed data is cut off");
    return 0;
  }

  private bit(i: number): number {
    const probs = this.probs;
    const p = probs[i] as number;
    const bound = (this.range >>> 11) * p;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      b = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[i] = p - (p >>> 5);
      b = 1;
    }
    if (this.range < 0x1000000) {
      this.range *= 256;
      this.code = this.code * 256 + this.next();
    }
    return b;
  }

  /**
   * A bit tree: bit() unrolled over locals, because literals (8 bits each) are most of the
   * work and V8 keeps locals in registers where fields go through memory (~12% of xz decoding).
   */
  private tree(base: number, bits: number): number {
    const probs = this.probs;
    const input = this.input;
    const inEnd = this.inEnd;
    let range = this.range;
    let code = this.code;
    let inPos = this.inPos;
    const top = 1 << bits;
    let m = 1;
    while (m < top) {
      const i = base + m;
      const p = probs[i] as number;
      const bound = (range >>> 11) * p;
      if (code < bound) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        m <<= 1;
      } else {
        range -= bound;
        code -= bound;
        probs[i] = p - (p >>> 5);
        m = (m << 1) | 1;
      }
      if (range < 0x1000000) {
        range *= 256;
        if (inPos < inEnd) code = code * 256 + (input[inPos++] as number);
        else {
          this.inPos = inPos;
          code = code * 256 + this.next();
          inPos = this.inPos;
        }
      }
    }
    this.range = range;
    this.code = code;
    this.inPos = inPos;
    return m - top;
  }

  private reverseTree(base: number, bits: number): number {
    let m = 1;
    let symbol = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(base + m);
      m = (m << 1) | b;
      symbol |= b << i;
    }
    return symbol;
  }

  private direct(bits: number): number {
    let result = 0;
    for (let i = 0; i < bits; i++) {
      this.range = this.range >>> 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      result = result * 2 + b;
      if (this.range < 0x1000000) {
        this.range *= 256;
        this.code = this.code * 256 + this.next();
      }
    }
    return result;
  }

  private length(base: number, posState: number): number {
    if (this.bit(base) === 0) return this.tree(base + LEN_LOW + posState * 8, 3);
    if (this.bit(base + 1) === 0) return 8 + this.tree(base + LEN_MID + posState * 8, 3);
    return 16 + this.tree(base + LEN_HIGH, 8);
  }

  private distance(len: number): number {
    const slot = this.tree(POS_SLOT + (len < 3 ? len : 3) * 64, 6);
    if (slot < 4) return slot;
    const bits = (slot >>> 1) - 1;
    const base = (2 | (slot & 1)) * 2 ** bits;
    if (slot < END_POS_MODEL_INDEX) return base + this.reverseTree(SPEC_POS + base - slot, bits);
    return base + this.direct(bits - 4) * 16 + this.reverseTree(ALIGN, 4);
  }

  /**
   * Decodes until `outEnd` bytes are out, or the end marker when `endMarker` allows one (then
   * returns true). `clip`: a match running past outEnd is cut there (erofs reads the first bytes
   * of a pcluster); otherwise that is corruption.
   */
  decode(outEnd: number, options: { endMarker?: boolean; clip?: boolean } = {}): boolean {
    if (outEnd > this.out.length) throw lzmaCorrupt(this.kind, "it inflates past its size");
    const out = this.out;
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    const lc = this.lc;
    let pos = this.outPos;
    while (pos < outEnd) {
      const rel = pos - this.dictStart;
      const posState = rel & pbMask;
      const state = this.state;
      if (this.bit(IS_MATCH + state * POS_STATES_MAX + posState) === 0) {
        const prev = rel > 0 ? (out[pos - 1] as number) : 0;
        const base = LITERAL + 0x300 * (((rel & lpMask) << lc) + (prev >>> (8 - lc)));
        let symbol = 1;
        if (state >= 7) {
          // After a match the byte at rep0 steers the first bits (the "matched literal").
          let matchByte = out[pos - this.rep0 - 1] as number;
          do {
            const matchBit = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            const b = this.bit(base + ((1 + matchBit) << 8) + symbol);
            symbol = (symbol << 1) | b;
            if (matchBit !== b) break;
          } while (symbol < 0x100);
        }
        if (symbol === 1) symbol = 0x100 + this.tree(base, 8);
        else while (symbol < 0x100) symbol = (symbol << 1) | this.bit(base + symbol);
        out[pos++] = symbol - 0x100;
        this.state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.bit(IS_REP + state) !== 0) {
        if (rel === 0) throw lzmaCorrupt(this.kind, "it repeats before any byte was written");
        if (this.bit(IS_REP_G0 + state) === 0) {
          if (this.bit(IS_REP0_LONG + state * POS_STATES_MAX + posState) === 0) {
            // A "short rep": one byte from rep0.
            if (this.rep0 >= rel) throw lzmaCorrupt(this.kind, "a match reaches before the start");
            this.state = state < 7 ? 9 : 11;
            out[pos] = out[pos - this.rep0 - 1] as number;
            pos++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(IS_REP_G1 + state) === 0) {
            dist = this.rep1;
          } else {
            if (this.bit(IS_REP_G2 + state) === 0) {
              dist = this.rep2;
            } else {
              dist = this.rep3;
              this.rep3 = this.rep2;
            }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = dist;
        }
        len = this.length(REP_LEN_CODER, posState);
        this.state = state < 7 ? 8 : 11;
      } else {
        this.rep3 = this.rep2;
        this.rep2 = this.rep1;
        this.rep1 = this.rep0;
        len = this.length(LEN_CODER, posState);
        this.state = state < 7 ? 7 : 10;
        const dist = this.distance(len);
        if (dist === END_MARKER) {
          if (!options.endMarker) throw lzmaCorrupt(this.kind, "it ends before its size");
          this.outPos = pos;
          return true;
        }
        this.rep0 = dist;
      }
      len += MATCH_MIN_LEN;
      const back = this.rep0 + 1;
      if (back > rel) throw lzmaCorrupt(this.kind, "a match reaches before the start");
      if (pos + len > outEnd) {
        if (!options.clip) throw lzmaCorrupt(this.kind, "a match runs past its size");
        len = outEnd - pos;
      }
      if (back >= len) {
        out.copyWithin(pos, pos - back, pos - back + len);
        pos += len;
      } else {
        // Overlapping: the match repeats bytes it is writing.
        for (const end = pos + len; pos < end; pos++) out[pos] = out[pos - back] as number;
      }
    }
    this.outPos = pos;
    return false;
  }

  /** Whether the range decoder ended cleanly (its code is 0 after the last symbol). */
  get finishedCleanly(): boolean {
    return this.code === 0;
  }
}

/**
 * A .lzma ("LZMA alone") stream, as squashfs' lzma compressor writes it: 5 property bytes, the
 * uncompressed size (u64 LE, all ones when unknown), then LZMA data.
 */
export function lzmaAloneDecompress(input: Uint8Array, maxOutput: number): Buffer {
  if (input.length < 13) throw lzmaCorrupt("lzma", "the header is cut off");
  const view = Buffer.from(input.buffer, input.byteOffset, input.length);
  const declared = view.readBigUInt64LE(5);
  const known = declared !== 0xffffffffffffffffn;
  if (known && declared > BigInt(maxOutput))
    throw lzmaCorrupt("lzma", `it inflates past its size of ${maxOutput} bytes`);
  const size = known ? Number(declared) : maxOutput;
  const out = Buffer.allocUnsafe(size);
  const decoder = new LzmaDecoder("lzma", out);
  decoder.setProperties(decodeProperties("lzma", input[0] as number));
  decoder.resetState();
  decoder.startRange(input, 13, input.length);
  const ended = decoder.decode(size, { endMarker: true });
  if (!known && !ended)
    throw lzmaCorrupt("lzma", `it inflates past its size of ${maxOutput} bytes`);
  return out.subarray(0, decoder.outPos);
}

/**
 * The first `want` bytes of an erofs MicroLZMA stream: raw LZMA whose first byte, always 0 in
 * LZMA, carries the bitwise NOT of the properties byte; no size, no end marker.
 */
export function microLzmaDecompress(raw: Uint8Array, want: number): Buffer {
  if (raw.length < 5) throw lzmaCorrupt("lzma", "it is too short");
  const out = Buffer.allocUnsafe(want);
  const decoder = new LzmaDecoder("lzma", out);
  decoder.setProperties(decodeProperties("lzma", ~(raw[0] as number) & 0xff));
  decoder.resetState();
  decoder.startRange(raw, 1, raw.length, true);
  decoder.decode(want, { clip: true });
  return out;
}
