/**
 * The control plane takes a loaded config object (issue: in-cluster credentials must go
 * through the same path as a kubeconfig file): a client-node KubeConfig as is, or the
 * agent's own ApiCredentials (what inClusterCredentials returns), against the in-repo
 * API server; and the agent reads its Node's pod CIDR with the same object.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readNodePodCidr } from '../../../pkg/agent/kubernetes.ts';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import { createKubernetesControlPlane } from '../../../pkg/controlplane/kubernetes.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { ApiCredentials, type KubeConfigLike } from '../../../pkg/k8s/kubeconfig.ts';
import { allowFrom, endpoint, namespace, node, NODE, pod } from './fixtures.ts';

describe('control plane from a config object', () => {
  let server: ApiServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pal-kcobj-'));
    server = await startApiServer({});
    await server.writeKubeconfig(join(dir, 'kubeconfig'));
    server.create({ apiVersion: 'v1', ...namespace('x') } as never);
    for (const o of [pod('x', 'a', '10.244.0.11'), pod('x', 'b', '10.244.0.12')]) {
      const cur = server.create({ apiVersion: 'v1', ...o } as never);
      server.update({ ...cur, status: (o as { status?: unknown }).status } as never, 'status');
    }
    const n = server.create({ apiVersion: 'v1', ...node(NODE, '10.244.0.0/24', '10.89.0.10') } as never);
    server.update({ ...n, status: (node(NODE, '10.244.0.0/24', '10.89.0.10') as { status?: unknown }).status } as never, 'status');
    server.create(allowFrom('x', 'p', 'a', 'b', 8080) as never);
  });

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const configs: [string, () => KubeConfigLike][] = [
    ['a client-node KubeConfig', () => {
      const kc = new KubeConfig();
      kc.loadFromFile(join(dir, 'kubeconfig'));
      return kc;
    }],
    ['the agent\'s ApiCredentials', () => new ApiCredentials({ server: server.url })],
  ];

  for (const [name, make] of configs) {
    test(`${name}: syncs and realizes the policy`, async () => {
      const datapath = new MemoryDatapath();
      const cp = await createKubernetesControlPlane({
        kubeConfig: make(), kubeconfig: '/nonexistent/ignored', nodeName: NODE, datapath,
        minIntervalMs: 1, maxDelayMs: 5, problemEvents: false,
      });
      try {
        void cp.upsertEndpoint(endpoint(1, 'x', 'a', '10.244.0.11'));
        await cp.start();
        await cp.waitFor(server.resourceVersion(), 10_000);
        const entries = (await datapath.dump()).policy.filter((e) => e.endpointId === 1);
        expect(entries.map((e) => [e.direction, e.port])).toEqual([['ingress', 8080]]);
      } finally {
        await cp.stop();
      }
    });
  }

  test('the agent reads its pod CIDR with the same object', async () => {
    const log = () => {};
    await expect(readNodePodCidr(new ApiCredentials({ server: server.url }), NODE, log, 1000)).resolves.toBe('10.244.0.0/24');
    await expect(readNodePodCidr(new ApiCredentials({ server: server.url }), 'no-such-node', log, 0))
      .rejects.toThrow(/reading node no-such-node: GET \/api\/v1\/nodes\/no-such-node: HTTP 404/);
  });
});
