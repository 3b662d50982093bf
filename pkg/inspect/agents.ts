/**
 * How `kubectl palisade` finds the agents: the pods of the chart's DaemonSet (selected by
 * label in the agent namespace), reached through the API server's pods/proxy subresource
 * on the agent's health port. docs/kubectl-palisade.md says why pods/proxy rather than
 * nodes/proxy (least privilege: a namespaced Role instead of kubelet access).
 */

/** Labels the chart puts on agent pods (charts/palisade/templates/_helpers.tpl selectorLabels). */
export const AGENT_POD_LABELS: Readonly<Record<string, string>> = {
  'app.kubernetes.io/name': 'palisade',
  'app.kubernetes.io/component': 'agent',
};

/** Label selector for AGENT_POD_LABELS, as a query parameter value. */
export const AGENT_SELECTOR = Object.entries(AGENT_POD_LABELS).map(([k, v]) => `${k}=${v}`).join(',');

/** Namespace the chart is installed in by default (docs/install.md). */
export const DEFAULT_AGENT_NAMESPACE = 'kube-system';

/** The agent's health port (charts/palisade values healthPort, agent --health-port). */
export const DEFAULT_AGENT_PORT = 9876;

/** Path of the pods/proxy subresource for a request to an agent pod. */
export function agentProxyPath(namespace: string, pod: string, port: number, path: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}:${port}/proxy${path}`;
}
