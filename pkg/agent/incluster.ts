/**
 * In-cluster credentials: what a pod has when neither --standalone nor --kubeconfig is
 * given. Checked up front (client-node's loadFromCluster would not notice a missing token
 * until requests fail with 401s), and loaded without client-node (pkg/k8s/kubeconfig.ts:
 * it costs the agent ~80 MB of memory). The result is what the control plane and the
 * agent's own requests use.
 */
import { inClusterCredentials, SERVICE_ACCOUNT_DIR, type KubeConfigLike } from '../k8s/kubeconfig.ts';

export { SERVICE_ACCOUNT_DIR };

/**
 * Loads the in-cluster credentials (server from KUBERNETES_SERVICE_HOST/PORT); throws
 * naming what is missing. `root` prefixes the service-account path (tests).
 */
export function loadInClusterConfig(root = ''): KubeConfigLike {
  return inClusterCredentials(root);
}
