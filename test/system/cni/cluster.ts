/**
 * A one-node Kubernetes setup for agent tests in Kubernetes mode: the in-repo API server
 * with Palisade's CRDs, reached from the node namespace through a relay, and the objects
 * both the CNI and the inspection tests start from: namespace x with pods a and b on the
 * node, and a policy isolating b for ingress.
 */
import { join } from 'node:path';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import { relayIntoNetns, type ApiRelay } from '../../helpers/apirelay.ts';
import { ROOT, type Node } from './harness.ts';

const CRDS = join(ROOT, 'manifests/crds.yaml');
const API_PORT = 6443;

export interface TestCluster {
  api: ApiServer;
  relay: ApiRelay;
  /** Stops the relay and the API server. */
  close(): Promise<void>;
}

export interface SeedOptions {
  /** Pod uids `uid-<name>` instead of the server's own. */
  fixedUids?: boolean;
  /** Container port 80/TCP on each pod. */
  port80?: boolean;
}

/**
 * Starts the API server, points `node.kubeconfig` at it (the agent lives in the node
 * namespace and reaches it at 127.0.0.1:6443 there) and creates the Node, namespace x, pods
 * x/a and x/b, and NetworkPolicy x/deny-b.
 */
export async function startTestCluster(node: Node, opts: SeedOptions = {}): Promise<TestCluster> {
  const api = await startApiServer({ crdFiles: [CRDS] });
  let relay: ApiRelay;
  try {
    relay = await relayIntoNetns(api.port, node.nodeNs, join(node.dir, 'api.sock'), API_PORT);
  } catch (err) {
    await api.close();
    throw err;
  }
  node.kubeconfig = join(node.dir, 'kubeconfig');
  await api.writeKubeconfig(node.kubeconfig, { server: `http://127.0.0.1:${API_PORT}` });

  api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: node.nodeName }, spec: { podCIDR: node.cidr } });
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { 'kubernetes.io/metadata.name': 'x' } } });
  for (const name of ['a', 'b']) {
    api.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: 'x', labels: { pod: name }, ...(opts.fixedUids ? { uid: `uid-${name}` } : {}) },
      spec: {
        nodeName: node.nodeName,
        containers: [{ name: 'c', image: 'probe', ...(opts.port80 ? { ports: [{ containerPort: 80, protocol: 'TCP' }] } : {}) }],
      },
    });
  }
  api.create({
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
    metadata: { name: 'deny-b', namespace: 'x' },
    spec: { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Ingress'] },
  });
  return {
    api, relay,
    async close() {
      await relay.close();
      await api.close();
    },
  };
}
