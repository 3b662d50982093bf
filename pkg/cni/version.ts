/**
 * CNI spec versions this plugin speaks. Imports nothing (the shim loads it).
 */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

export function isSupportedVersion(v: unknown): v is string {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares two dotted versions numerically: negative, 0 or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The lowest spec version that defines each command. */
export const COMMAND_MIN_VERSION: Readonly<Record<string, string>> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  CHECK: '0.4.0',
  VERSION: '0.3.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};
