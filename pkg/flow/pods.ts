/**
 * Address -> pod lookup for flow enrichment, rebuilt only when the pod map changes.
 * The control plane's store hands out immutable snapshot maps (a new map after any pod
 * change), so the map's identity is the cache key.
 */
import type { Pod } from '../policy/snapshot.ts';

export interface PodRef {
  namespace: string;
  name: string;
}

export class PodIpIndex {
  readonly #pods: () => ReadonlyMap<string, Pod> | undefined;
  #source: ReadonlyMap<string, Pod> | undefined;
  #byIp = new Map<string, PodRef>();

  constructor(pods: () => ReadonlyMap<string, Pod> | undefined) {
    this.#pods = pods;
  }

  lookup(ip: string): PodRef | undefined {
    const pods = this.#pods();
    if (pods !== this.#source) {
      this.#source = pods;
      this.#byIp = new Map();
      for (const p of pods?.values() ?? []) {
        // A host-network pod shares the node's address: naming it would misattribute node traffic.
        if (p.spec?.hostNetwork) continue;
        // A finished pod's address may already belong to a new pod.
        if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
        const ref = { namespace: p.metadata.namespace ?? '', name: p.metadata.name ?? '' };
        const ips = new Set([p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)]);
        for (const ip of ips) if (ip) this.#byIp.set(ip, ref);
      }
    }
    return this.#byIp.get(ip);
  }
}
