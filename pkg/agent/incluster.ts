/**
 * In-cluster credentials: what a pod has when neither --standalone nor --kubeconfig is
 * given. client-node's loadFromCluster does not check that the service-account files
 * exist (a missing token only shows up as 401s later), so the agent checks first and
 * fails with a clear error.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Loads the in-cluster KubeConfig (server from KUBERNETES_SERVICE_HOST/PORT); throws
 * naming what is missing. `root` prefixes the service-account path (tests).
 */
export function loadInClusterConfig(root = ''): KubeConfig {
  const dir = `${root}${SERVICE_ACCOUNT_DIR}`;
  const missing = ['token', 'ca.crt'].map((f) => join(dir, f)).filter((f) => !existsSync(f));
  if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
    missing.push('KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT');
  }
  if (missing.length) {
    throw new Error(`in-cluster credentials: missing ${missing.join(', ')} (not in a pod? pass --kubeconfig)`);
  }
  const kc = new KubeConfig();
  kc.loadFromCluster(root);
  return kc;
}
