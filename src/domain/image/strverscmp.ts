// Version comparison of partition labels as systemd does it (strverscmp_improved, string-util.c,
// since systemd 250): dissect keeps, of several root or usr partitions, the one whose label is
// newest. Written from systemd's documented rules, not its code: segments of letters and digits,
// '~' older than anything, '-' and '^' and '.' as separators, letters compared byte-wise.

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isVersionChar = (c: number) =>
  isDigit(c) || isAlpha(c) || c === 0x7e || c === 0x2d || c === 0x5e || c === 0x2e;
const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

function byteCompare(a: Buffer, i: number, b: Buffer, j: number): number {
  return sign(Buffer.compare(a.subarray(i), b.subarray(j)));
}

/** < 0 when `a` is older than `b`, 0 when equal, > 0 when newer. */
export function strverscmpImproved(left: string, right: string): number {
  const a = Buffer.from(left, "utf8");
  const b = Buffer.from(right, "utf8");
  if (a.length === 0 || b.length === 0) return byteCompare(a, 0, b, 0);
  let i = 0;
  let j = 0;
  const at = (s: Buffer, k: number) => (k < s.length ? (s[k] as number) : 0);
  for (;;) {
    while (i < a.length && !isVersionChar(at(a, i))) i++;
    while (j < b.length && !isVersionChar(at(b, j))) j++;
    // '~' marks a pre-release: the side that has it is older.
    if (at(a, i) === 0x7e || at(b, j) === 0x7e) {
      const r = sign(Number(at(a, i) !== 0x7e) - Number(at(b, j) !== 0x7e));
      if (r !== 0) return r;
      i++;
      j++;
    }
    // One string ended: the longer one is newer.
    if (i >= a.length || j >= b.length) return byteCompare(a, i, b, j);
    for (const sep of [0x2d, 0x5e, 0x2e]) {
      // '-' (release), '^' (patch), '.' (separator): the side that has it here is older.
      if (at(a, i) === sep || at(b, j) === sep) {
        const r = sign(Number(at(a, i) !== sep) - Number(at(b, j) !== sep));
        if (r !== 0) return r;
        i++;
        j++;
      }
    }
    if (isDigit(at(a, i)) || isDigit(at(b, j))) {
      // A number is newer than letters ("0" beats "A", seen on 252); then leading zeros are
      // dropped, the longer is newer, else digit by digit.
      const r0 = sign(Number(isDigit(at(a, i))) - Number(isDigit(at(b, j))));
      if (r0 !== 0) return r0;
      while (at(a, i) === 0x30) i++;
      while (at(b, j) === 0x30) j++;
      let ei = i;
      let ej = j;
      while (isDigit(at(a, ei))) ei++;
      while (isDigit(at(b, ej))) ej++;
      const r = sign(ei - i - (ej - j));
      if (r !== 0) return r;
      const c = sign(Buffer.compare(a.subarray(i, ei), b.subarray(j, ej)));
      if (c !== 0) return c;
      i = ei;
      j = ej;
    } else {
      // Letters: compared byte-wise ("A" < "a"); on a common prefix the longer is newer.
      let ei = i;
      let ej = j;
      while (isAlpha(at(a, ei))) ei++;
      while (isAlpha(at(b, ej))) ej++;
      const n = Math.min(ei - i, ej - j);
      const c = sign(Buffer.compare(a.subarray(i, i + n), b.subarray(j, j + n)));
      if (c !== 0) return c;
      const r = sign(ei - i - (ej - j));
      if (r !== 0) return r;
      i = ei;
      j = ej;
    }
  }
}
