/**
 * The per-endpoint CIDR lookup (docs/datapath.md, step 6). Given the ipBlock peers of one
 * endpoint and direction (each with its excepts and the ports of its rule), computes the
 * prefixes to insert and what each stands for:
 *
 * every `cidr` and every `except` is a prefix; the value of prefix P is the set of peers
 * whose cidr contains P and none of whose excepts contains P. For an address A, the
 * longest inserted prefix containing A has exactly the peers that match A (every cidr and
 * except containing A also contains that prefix), so the datapath's LPM answer is exact.
 *
 * Prefixes whose set equals that of their nearest emitted ancestor are left out (the LPM
 * falls through to the same answer), and so are empty sets with no emitted ancestor (a
 * miss means the same). An empty set under a non-empty ancestor is emitted with no
 * members: the caller maps it to IDENTITY_WORLD, which has no entries.
 */
import { formatPrefix, prefixContains, type Prefix } from './ip.ts';

export interface CidrElement<P> {
  /**
   * Canonical text of the peer, e.g. "10.0.0.0/8 except 10.1.0.0/16". Elements with one
   * member text must have the same cidr and excepts (they then always match together).
   */
  member: string;
  prefix: Prefix;
  excepts: readonly Prefix[];
  ports: readonly P[];
}

export interface OverlayPrefix<P> {
  prefix: Prefix;
  /** Sorted, unique member texts; empty = no peer (IDENTITY_WORLD). */
  members: string[];
  /** Ports of every element in the set. */
  ports: P[];
}

export function computeOverlay<P>(elements: readonly CidrElement<P>[]): OverlayPrefix<P>[] {
  const byText = new Map<string, Prefix>();
  for (const e of elements) {
    byText.set(formatPrefix(e.prefix), e.prefix);
    for (const x of e.excepts) byText.set(formatPrefix(x), x);
  }
  const prefixes = [...byText.values()].sort((a, b) => a.len - b.len || a.addr - b.addr);
  const emitted: { prefix: Prefix; setKey: string }[] = [];
  const out: OverlayPrefix<P>[] = [];
  for (const p of prefixes) {
    const set = elements.filter(
      (e) => prefixContains(e.prefix, p) && !e.excepts.some((x) => prefixContains(x, p)));
    const members = [...new Set(set.map((e) => e.member))].sort();
    const setKey = members.join('\n');
    let ancestor: { setKey: string } | undefined;
    for (let i = emitted.length - 1; i >= 0; i--) {
      const a = emitted[i]!;
      if (a.prefix.len < p.len && prefixContains(a.prefix, p)) {
        // `emitted` is in ascending length, so the last containing one is the nearest.
        ancestor = a;
        break;
      }
    }
    if (ancestor ? ancestor.setKey === setKey : members.length === 0) continue;
    emitted.push({ prefix: p, setKey });
    out.push({ prefix: p, members, ports: set.flatMap((e) => e.ports) });
  }
  return out;
}
