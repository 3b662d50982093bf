/**
 * The realizer of standalone mode (no Kubernetes): writes each endpoint's entry and its
 * ipcache entry with enforcement off in both directions, so traffic flows and is
 * tracked but no policy applies. Every pod shares one identity.
 */
import type { Datapath, DatapathState, EndpointEntry, IpcacheEntry } from '../datapath/types.ts';
import { emptyState } from '../datapath/types.ts';
import { IDENTITY_FIRST_LABEL } from '../identity/reserved.ts';
import type { EndpointRealizer, LocalEndpoint } from './types.ts';

/** The one identity standalone pods carry (the first label identity). */
export const STANDALONE_POD_IDENTITY = IDENTITY_FIRST_LABEL;

export class StandaloneRealizer implements EndpointRealizer {
  private readonly datapath: Datapath;
  private readonly applied = new Map<number, { ep: EndpointEntry; ip: IpcacheEntry }>();

  constructor(datapath: Datapath) {
    this.datapath = datapath;
  }

  async upsertEndpoint(ep: LocalEndpoint): Promise<void> {
    const entry: EndpointEntry = {
      ifindex: ep.ifindex, endpointId: ep.endpointId, identity: STANDALONE_POD_IDENTITY,
      ipv4: ep.ipv4, ingressEnforced: false, egressEnforced: false,
    };
    const ip: IpcacheEntry = { cidr: `${ep.ipv4}/32`, identity: STANDALONE_POD_IDENTITY };
    const upsert: DatapathState = { ...emptyState(), endpoints: [entry], ipcache: [ip] };
    const del = emptyState();
    const old = this.applied.get(ep.endpointId);
    if (old && old.ep.ifindex !== entry.ifindex) del.endpoints.push(old.ep);
    if (old && old.ip.cidr !== ip.cidr) del.ipcache.push(old.ip);
    await this.datapath.apply({ upsert, delete: del });
    this.applied.set(ep.endpointId, { ep: entry, ip });
  }

  async removeEndpoint(endpointId: number): Promise<void> {
    const old = this.applied.get(endpointId);
    if (!old) return;
    await this.datapath.apply({
      upsert: emptyState(),
      delete: { ...emptyState(), endpoints: [old.ep], ipcache: [old.ip] },
    });
    this.applied.delete(endpointId);
  }

  /**
   * After a restart: removes endpoint and pod ipcache entries the datapath still holds
   * for endpoints that no longer exist (a pod deleted while the agent was down).
   * Call after every live endpoint has been upserted.
   */
  async resync(): Promise<number> {
    const have = await this.datapath.dump();
    const liveIfindex = new Set([...this.applied.values()].map((a) => a.ep.ifindex));
    const liveCidr = new Set([...this.applied.values()].map((a) => a.ip.cidr));
    const del: DatapathState = {
      ...emptyState(),
      endpoints: have.endpoints.filter((e) => !liveIfindex.has(e.ifindex)),
      ipcache: have.ipcache.filter((e) => e.identity === STANDALONE_POD_IDENTITY && !liveCidr.has(e.cidr)),
    };
    if (del.endpoints.length + del.ipcache.length > 0) {
      await this.datapath.apply({ upsert: emptyState(), delete: del });
    }
    return del.endpoints.length + del.ipcache.length;
  }
}
