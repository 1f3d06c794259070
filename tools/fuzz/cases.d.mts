// Types of cases.mjs, for the test suite that runs a few thousand of its cases.
export interface FuzzContext {
  host: string;
  seed: number;
  user: string;
  password: string;
  tokens: Record<'pull' | 'push' | 'mirror' | 'otherHost' | 'expired' | 'foreignKey' | 'unsigned', string>;
  manifestDigest: string;
  blobDigest: string | undefined;
}
export interface FuzzStats {
  cases: number;
  answered: number;
  closedWithoutAnswer: number;
  aborted: number;
  timeouts: number;
  crashes: number;
  status: Record<string, number>;
  fiveXX: Array<{ i: number; status: number; id: string; method: string; path: string; body: string }>;
  formatProblemCount: number;
  formatProblems: unknown[];
  continueBeforeRefusal: unknown[];
  garbage: unknown[];
  /** Error responses whose (code, HTTP status) pair the error table does not have; `pair` is `CODE status`. */
  badPairs: Array<{ i: number; id: string; pair: string; method: string; path: string }>;
}
/** A table of error descriptors, as registry-core's RegistryErrors. */
export type ErrorTable = Readonly<Record<string, { readonly code: string; readonly status: number }>>;
export function allowedPairs(table: ErrorTable): Set<string>;
export function pairProblems(res: { status: number; complete: boolean; body: Buffer }, method: string, allowed: Set<string>): string[];
export function fuzz(options: {
  port: number;
  ctx: FuzzContext;
  seed: number;
  count: number;
  concurrency?: number;
  alive?: () => boolean;
  onProgress?: (s: FuzzStats) => void;
  errorTable?: ErrorTable;
}): Promise<FuzzStats>;
