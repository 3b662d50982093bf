/**
 * Services end to end without root: the in-memory API server (ClusterIP allocation and
 * its EndpointSlice controller), the real informers and reconciler, the in-memory
 * datapath. After each API change the datapath's frontends must be what the API says,
 * and a packet to the ClusterIP must be translated to a ready backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import type { KubernetesControlPlane } from '../../../pkg/controlplane/kubernetes.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { putObject, startControlPlane, tempDir, teardown } from '../controlplane/apirig.ts';
import { endpoint, NODE } from '../controlplane/fixtures.ts';

type Obj = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> } };

function readyPod(name: string, ip: string, labels: Record<string, string>, httpPort: number): Obj {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'x', labels },
    spec: { nodeName: NODE, containers: [{ name: 'c', image: 'probe', ports: [{ name: 'http', containerPort: httpPort, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

describe('control plane: Services and EndpointSlices to datapath frontends', () => {
  let server: ApiServer;
  let dir: string;
  let cp: KubernetesControlPlane;
  const datapath = new MemoryDatapath();

  const put = (o: Obj): void => putObject(server, { ...o, apiVersion: String(o.apiVersion) }, true);

  async function converged(): Promise<void> {
    // The EndpointSlice controller writes in a microtask after the write that caused it.
    await new Promise((r) => setTimeout(r, 20));
    await cp.waitFor(server.resourceVersion(), 10_000);
  }

  const clusterIP = (name: string): string =>
    (server.get('v1', 'Service', 'x', name) as unknown as { spec: { clusterIP: string } }).spec.clusterIP;

  beforeAll(async () => {
    dir = await tempDir('pal-svc-cp-');
    server = await startApiServer({ endpointSliceController: true });
    put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } });
    put(readyPod('a', '10.244.0.11', { pod: 'a' }, 8000));
    put(readyPod('b', '10.244.0.12', { pod: 'b', app: 'web' }, 8080));
    put(readyPod('c', '10.244.0.13', { pod: 'c', app: 'web' }, 9090));
    put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'x' },
      spec: { selector: { app: 'web' }, ports: [{ name: 'web', port: 80, targetPort: 'http', protocol: 'TCP' }] } });
    cp = await startControlPlane(server, dir, {
      nodeName: NODE, datapath, problemEvents: false, minIntervalMs: 1, maxDelayMs: 10,
    }, [endpoint(1, 'x', 'a', '10.244.0.11')]);
  });

  afterAll(() => teardown(cp, server, dir));

  it('a named targetPort resolved per backend pod; a packet to the ClusterIP reaches one of them', async () => {
    await converged();
    const ip = clusterIP('web');
    expect(await datapath.dumpServices()).toEqual([expect.objectContaining({
      ip, port: 80, protocol: 6, affinityTimeoutSec: 0,
      backends: [{ ip: '10.244.0.12', port: 8080 }, { ip: '10.244.0.13', port: 9090 }],
    })]);
    const r = datapath.send({ ifindex: 1, direction: 'egress', srcIp: '10.244.0.11', dstIp: ip, srcPort: 40000, dstPort: 80, protocol: 6, tcpFlags: 2 });
    expect(['10.244.0.12:8080', '10.244.0.13:9090']).toContain(`${r.packet.dstIp}:${r.packet.dstPort}`);
  });

  it('follows readiness, affinity and deletion', async () => {
    const ip = clusterIP('web');
    put(readyPod('c', '10.244.0.13', { pod: 'c', app: 'web' }, 9090));
    put({ ...readyPod('c', '10.244.0.13', { pod: 'c', app: 'web' }, 9090),
      status: { phase: 'Running', podIP: '10.244.0.13', podIPs: [{ ip: '10.244.0.13' }], conditions: [{ type: 'Ready', status: 'False' }] } });
    await converged();
    expect((await datapath.dumpServices())[0]!.backends).toEqual([{ ip: '10.244.0.12', port: 8080 }]);

    put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'x' },
      spec: { clusterIP: ip, selector: { app: 'web' }, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } },
        ports: [{ name: 'web', port: 80, targetPort: 'http', protocol: 'TCP' }] } });
    await converged();
    expect((await datapath.dumpServices())[0]!.affinityTimeoutSec).toBe(30);

    put(readyPod('b', '10.244.0.12', { pod: 'b' }, 8080)); // leaves the selector: no backend left
    await converged();
    expect((await datapath.dumpServices())[0]!.backends).toEqual([]);
    expect(datapath.send({ ifindex: 1, direction: 'egress', srcIp: '10.244.0.11', dstIp: ip, srcPort: 40001, dstPort: 80, protocol: 6, tcpFlags: 2 })
      .translation.action).toBe('reject');

    server.delete('v1', 'Service', 'x', 'web');
    await converged();
    expect(await datapath.dumpServices()).toEqual([]);
  });
});
