/**
 * `${ip:ns/pod}` and `${cidr:ns/pod/N}` in scenario objects (shared/SCENARIOS.md).
 *
 * Contract: returns a deep copy of the value with every occurrence inside strings
 * replaced; an unknown pod or a bad prefix length throws an Error naming the reference.
 * Strings without `${` are returned untouched.
 */

const REF = /\$\{(ip|cidr):([^}]*)\}/g;

/** The IPv4 prefix of length `bits` containing `ip`, as `a.b.c.d/bits`. */
export function prefixOf(ip: string, bits: number): string {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`"${ip}" is not an IPv4 address`);
  }
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`prefix length ${bits} is not in 0..32`);
  const n = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  const m = (n & mask) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}/${bits}`;
}

function replaceIn(s: string, ipOf: (pod: string) => string | undefined): string {
  if (!s.includes('${')) return s;
  return s.replace(REF, (_all, kind: string, arg: string) => {
    if (kind === 'ip') {
      const ip = ipOf(arg);
      if (ip === undefined) throw new Error(`\${ip:${arg}}: no pod ${arg} exists`);
      return ip;
    }
    const m = /^([a-z0-9-]+\/[a-z0-9-]+)\/(\d+)$/.exec(arg);
    if (!m) throw new Error(`\${cidr:${arg}}: expected \${cidr:<ns>/<pod>/<bits>}`);
    const ip = ipOf(m[1]!);
    if (ip === undefined) throw new Error(`\${cidr:${arg}}: no pod ${m[1]} exists`);
    return prefixOf(ip, Number(m[2]));
  });
}

/** Substitutes pod references throughout a JSON-like value. */
export function substitute<T>(value: T, ipOf: (pod: string) => string | undefined): T {
  if (typeof value === 'string') return replaceIn(value, ipOf) as T;
  if (Array.isArray(value)) return value.map((v) => substitute(v, ipOf)) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substitute(v, ipOf);
    return out as T;
  }
  return value;
}
