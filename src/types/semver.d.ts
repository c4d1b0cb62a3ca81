// The part of node-semver's API extctl uses (the package ships no types, and @types/semver is
// not installed); see src/domain/catalog/resolve.ts.
declare module "semver" {
  export interface SemVerOptions {
    loose?: boolean;
    includePrerelease?: boolean;
  }
  export function valid(version: string, options?: SemVerOptions): string | null;
  export function clean(version: string, options?: SemVerOptions): string | null;
  export function validRange(range: string, options?: SemVerOptions): string | null;
  export function satisfies(version: string, range: string, options?: SemVerOptions): boolean;
  export function compare(a: string, b: string, options?: SemVerOptions): -1 | 0 | 1;
  export function rcompare(a: string, b: string, options?: SemVerOptions): -1 | 0 | 1;
  const semver: {
    valid: typeof valid;
    clean: typeof clean;
    validRange: typeof validRange;
    satisfies: typeof satisfies;
    compare: typeof compare;
    rcompare: typeof rcompare;
  };
  export default semver;
}
