/**
 * CNI_ARGS: `KEY=VALUE;KEY=VALUE`. Kubernetes runtimes pass the pod identity here
 * (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID, K8S_POD_INFRA_CONTAINER_ID) together
 * with `IgnoreUnknown=1`. Imports nothing beyond its siblings (the shim loads it).
 */
import { CniError, CNI_ERR_INVALID_ENV } from './errors.ts';

export const KNOWN_ARGS = [
  'IgnoreUnknown', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID',
  'K8S_POD_INFRA_CONTAINER_ID',
] as const;

/** The pod identity a runtime passed, empty strings when absent. */
export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
  infraContainerId: string;
}

/**
 * Parses CNI_ARGS. Rejects (code 4) a pair without `=` and, unless IgnoreUnknown is
 * true/1, a key Palisade does not know — as the spec's libcni does.
 */
export function parseCniArgs(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(CNI_ERR_INVALID_ENV, `invalid CNI_ARGS pair "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const ignore = /^(1|true)$/i.test(out.IgnoreUnknown ?? '');
  if (!ignore) {
    for (const k of Object.keys(out)) {
      if (!(KNOWN_ARGS as readonly string[]).includes(k)) {
        throw new CniError(CNI_ERR_INVALID_ENV, `unknown CNI_ARGS key "${k}" (set IgnoreUnknown=1)`);
      }
    }
  }
  return out;
}

export function podIdentity(args: Record<string, string>): PodIdentity {
  return {
    namespace: args.K8S_POD_NAMESPACE ?? '',
    name: args.K8S_POD_NAME ?? '',
    uid: args.K8S_POD_UID ?? '',
    infraContainerId: args.K8S_POD_INFRA_CONTAINER_ID ?? '',
  };
}
