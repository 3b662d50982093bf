/**
 * The seam between the endpoint lifecycle (CNI ADD/DEL, owned by pkg/endpoint) and
 * whatever turns endpoints into datapath state: the control plane (pkg/controlplane) in
 * Kubernetes mode, a policy-free realizer in standalone mode.
 */
import type { LocalEndpoint } from '../policy/snapshot.ts';

export type { LocalEndpoint };

export interface EndpointRealizer {
  /**
   * Registers (or re-registers) a local endpoint and resolves once its endpoint entry,
   * its ipcache entry and its policy are in the datapath (NETPOL 26: the CNI ADD does not
   * return before that). Rejects with an error naming the cause when it cannot.
   */
  upsertEndpoint(ep: LocalEndpoint): Promise<void>;
  /** Removes the endpoint's entries; resolves once they are gone. Idempotent. */
  removeEndpoint(endpointId: number): Promise<void>;
}
