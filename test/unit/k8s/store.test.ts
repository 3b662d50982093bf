import { describe, expect, it } from 'vitest';
import { RESOURCES, sameContent } from '../../../pkg/k8s/resources.ts';
import { ClusterStore, type StoreChange } from '../../../pkg/k8s/store.ts';
import type { NetworkPolicy, Pod } from '../../../pkg/policy/snapshot.ts';

function pod(name: string, labels: Record<string, string>, rv: string, extra: object = {}): Pod {
  return RESOURCES.pods.slim({
    metadata: { name, namespace: 'x', labels, resourceVersion: rv, managedFields: [{}] },
    spec: { nodeName: 'n0', containers: [{ name: 'c', image: 'busybox', ports: [{ name: 'http', containerPort: 80 }] }] },
    status: { phase: 'Running', podIP: '10.244.0.5', conditions: [{ type: 'Ready' }], ...extra },
  }) as Pod;
}

function ns(name: string, labels: Record<string, string>, rv: string) {
  return RESOURCES.namespaces.slim({ metadata: { name, labels, resourceVersion: rv } });
}

describe('ClusterStore', () => {
  it('a pod relabel carries the old labels and leaves earlier snapshots untouched', () => {
    const store = new ClusterStore();
    const changes: StoreChange[] = [];
    store.subscribe((c) => changes.push(c));
    store.upsert('pods', pod('a', { pod: 'a' }, '10'));
    const before = store.snapshot();
    store.upsert('pods', pod('a', { pod: 'b' }, '11'));
    const after = store.snapshot();

    expect(changes).toHaveLength(2);
    expect(changes[1]!.old?.metadata.labels).toEqual({ pod: 'a' });
    expect(changes[1]!.new?.metadata.labels).toEqual({ pod: 'b' });
    expect(before.pods.get('x/a')!.metadata.labels).toEqual({ pod: 'a' });
    expect(after.pods.get('x/a')!.metadata.labels).toEqual({ pod: 'b' });
    expect(after.revision).toBe(before.revision + 1);
  });

  it('a namespace relabel is a change with old and new labels', () => {
    const store = new ClusterStore();
    const changes: StoreChange[] = [];
    store.upsert('namespaces', ns('x', { team: 'a' }, '5'));
    store.subscribe((c) => changes.push(c));
    store.upsert('namespaces', ns('x', { team: 'b' }, '6'));
    expect(changes).toEqual([expect.objectContaining({
      kind: 'namespaces', key: 'x',
      old: expect.objectContaining({ metadata: expect.objectContaining({ labels: { team: 'a' } }) }),
      new: expect.objectContaining({ metadata: expect.objectContaining({ labels: { team: 'b' } }) }),
    })]);
  });

  it('updates that change nothing Palisade reads are not changes, but advance the resourceVersion', () => {
    const store = new ClusterStore();
    store.upsert('pods', pod('a', { pod: 'a' }, '10'));
    const rev = store.revision;
    // Only a status condition changed (slimmed away) and the RV moved on.
    expect(store.upsert('pods', pod('a', { pod: 'a' }, '12', { conditions: [{ type: 'NotReady' }] }))).toBe(false);
    expect(store.revision).toBe(rev);
    expect(store.resourceVersion).toBe('12');
    // The same object again (a relist replay) is not a change either.
    expect(store.upsert('pods', pod('a', { pod: 'a' }, '10'))).toBe(false);
    expect(store.resourceVersion).toBe('12');
  });

  it('replace (relist) upserts, removes what is missing and is idempotent', () => {
    const store = new ClusterStore();
    store.upsert('pods', pod('a', { pod: 'a' }, '1'));
    store.upsert('pods', pod('b', { pod: 'b' }, '2'));
    const changes: StoreChange[] = [];
    store.subscribe((c) => changes.push(c));
    const n = store.replace('pods', [pod('a', { pod: 'a' }, '1'), pod('c', { pod: 'c' }, '7')], '9');
    expect(n).toBe(2);
    expect(changes.map((c) => [c.key, !!c.old, !!c.new])).toEqual([['x/c', false, true], ['x/b', true, false]]);
    expect([...store.snapshot().pods.keys()].sort()).toEqual(['x/a', 'x/c']);
    expect(store.resourceVersion).toBe('9');
    expect(store.replace('pods', [pod('a', { pod: 'a' }, '1'), pod('c', { pod: 'c' }, '7')], '9')).toBe(0);
  });

  it('replace of one policy kind leaves the other kind alone', () => {
    const store = new ClusterStore();
    const np = RESOURCES.networkPolicies.slim({ metadata: { name: 'p', namespace: 'x', resourceVersion: '1' }, spec: { podSelector: {} } }) as NetworkPolicy;
    const pnp = RESOURCES.palisadeNetworkPolicies.slim({ metadata: { name: 'p', namespace: 'x', resourceVersion: '2' }, spec: { podSelector: {} } }) as NetworkPolicy;
    store.upsert('policies', np);
    store.upsert('policies', pnp);
    expect(store.size('policies')).toBe(2);
    store.replace('policies', [], '3', (o) => o.kind === 'PalisadeNetworkPolicy');
    expect([...store.snapshot().policies.keys()]).toEqual(['NetworkPolicy:x/p']);
  });

  it('remove of an absent object is not a change; the highest resourceVersion is kept', () => {
    const store = new ClusterStore();
    expect(store.remove('pods', 'x/none', '20')).toBe(false);
    expect(store.revision).toBe(0);
    store.observeResourceVersion('15');
    store.observeResourceVersion('not-a-number');
    expect(store.resourceVersion).toBe('20');
  });

  it('slims objects to what Palisade reads', () => {
    const p = pod('a', { pod: 'a' }, '3');
    expect(p).toEqual({
      kind: 'Pod',
      metadata: { name: 'a', namespace: 'x', labels: { pod: 'a' }, resourceVersion: '3' },
      spec: { nodeName: 'n0', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }] },
      status: { phase: 'Running', podIP: '10.244.0.5' },
    });
    expect(() => RESOURCES.pods.slim({ metadata: { name: 'a' } })).toThrow(/namespace/);
    const del = RESOURCES.pods.slim({ metadata: { name: 'a', namespace: 'x', deletionTimestamp: new Date(0) }, spec: {} });
    expect(del.metadata.deletionTimestamp).toBe('1970-01-01T00:00:00.000Z');
    expect(sameContent(p, pod('a', { pod: 'a' }, '4'))).toBe(true);
    expect(sameContent(p, pod('a', { pod: 'b' }, '4'))).toBe(false);
  });

  it('keeps nothing of a full pod the agent does not read (managedFields, status, spec)', () => {
    const full = {
      apiVersion: 'v1', kind: 'Pod',
      metadata: {
        name: 'web', namespace: 'x', uid: 'u1', resourceVersion: '9', labels: { app: 'web' },
        annotations: { big: 'x'.repeat(1000) }, ownerReferences: [{ kind: 'ReplicaSet', name: 'web-1' }],
        managedFields: [{ manager: 'kubelet', fieldsV1: { 'f:status': {} } }],
      },
      spec: {
        nodeName: 'n1', serviceAccountName: 'default', volumes: [{ name: 'v' }],
        containers: [{ name: 'c', image: 'nginx', env: [{ name: 'A', value: 'b' }], ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }],
      },
      status: {
        phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }], hostIP: '192.168.0.2',
        conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'c', ready: true }],
      },
    };
    expect(RESOURCES.pods.slim(full)).toEqual({
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'x', uid: 'u1', resourceVersion: '9', labels: { app: 'web' } },
      spec: { nodeName: 'n1', containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
      status: { phase: 'Running', podIP: '10.1.0.5' },
    });
    // Dual stack: podIPs says more than podIP, so it stays.
    const dual = RESOURCES.pods.slim({ ...full, status: { podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }, { ip: 'fd00::5' }] } }) as Pod;
    expect(dual.status).toEqual({ podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }, { ip: 'fd00::5' }] });
  });
});
