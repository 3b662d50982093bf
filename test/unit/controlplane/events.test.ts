/**
 * Events for policy problems (pkg/controlplane/events.ts): what an Event says, dedup per
 * agent and across agents, the rate limit; and end to end, two agents' control planes
 * against the in-repo API server write exactly one Event per problem on the policy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startApiServer, type ApiServer } from '../../../pkg/apiserver/index.ts';
import {
  PROBLEM_EVENT_REASON, ProblemEvents, type CoreEvent, type EventSink,
} from '../../../pkg/controlplane/events.ts';
import { createKubernetesControlPlane, type KubernetesControlPlane } from '../../../pkg/controlplane/kubernetes.ts';
import { MemoryDatapath } from '../../../pkg/datapath/memory/index.ts';
import { ApiError } from '../../../pkg/k8s/request.ts';
import type { NetworkPolicy } from '../../../pkg/policy/snapshot.ts';
import type { PolicyProblem } from '../../../pkg/policy/types.ts';
import { eventually, flush, ManualClock, RecordingLogger } from './fakes.ts';

/** Remembers Events by name; a second create of one name is 409, as on a real server. */
class FakeSink implements EventSink {
  readonly events = new Map<string, CoreEvent>();
  creates = 0;
  async create(ev: CoreEvent): Promise<void> {
    this.creates++;
    if (this.events.has(ev.metadata.name)) throw new ApiError('exists', 409, 'AlreadyExists');
    this.events.set(ev.metadata.name, ev);
  }
}

function policyMap(...ps: [string, number][]): Map<string, NetworkPolicy> {
  return new Map(ps.map(([key, generation]) => {
    const [, ns, name] = /^[^:]+:([^/]+)\/(.+)$/.exec(key)!;
    return [key, {
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
      metadata: { name: name!, namespace: ns!, uid: `uid-${name}`, generation, resourceVersion: String(10 + generation) },
      spec: { podSelector: {} },
    }];
  }));
}

const bad = (policy: string, field: string, message = 'bad value'): PolicyProblem => ({ policy, field, message });

describe('problem events', () => {
  test('one Warning Event per problem, on the policy, naming the field', async () => {
    const sink = new FakeSink();
    const pe = new ProblemEvents({ sink, nodeName: 'node-a', clock: new ManualClock(), wallClock: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
    const policies = policyMap(['NetworkPolicy:x/p', 1]);
    pe.report([bad('NetworkPolicy:x/p', 'spec.ingress[0].ports[0].protocol', 'unknown protocol "ICMP"')], policies);
    await flush();
    expect([...sink.events.values()]).toEqual([{
      apiVersion: 'v1', kind: 'Event',
      metadata: { name: expect.stringMatching(/^p\.pal-[0-9a-f]{16}$/), namespace: 'x' },
      involvedObject: {
        apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', namespace: 'x', name: 'p', uid: 'uid-p',
        resourceVersion: '11', fieldPath: 'spec.ingress[0].ports[0].protocol',
      },
      reason: PROBLEM_EVENT_REASON,
      message: 'spec.ingress[0].ports[0].protocol: unknown protocol "ICMP"; the rule allows nothing (fails closed)',
      type: 'Warning',
      source: { component: 'palisade-agent', host: 'node-a' },
      reportingComponent: 'palisade-agent', reportingInstance: 'node-a',
      firstTimestamp: '2026-01-02T03:04:05Z', lastTimestamp: '2026-01-02T03:04:05Z', count: 1,
    }]);
  });

  test('reported when it appears, not on every reconcile; again when it comes back in a new generation', async () => {
    const sink = new FakeSink();
    const pe = new ProblemEvents({ sink, nodeName: 'n', clock: new ManualClock() });
    const p = bad('NetworkPolicy:x/p', 'spec.ingress[0].ports[0].port');
    for (let i = 0; i < 5; i++) {
      pe.report([p], policyMap(['NetworkPolicy:x/p', 1]));
      await flush();
    }
    expect(sink.creates).toBe(1);
    pe.report([], policyMap(['NetworkPolicy:x/p', 2]));
    pe.report([p], policyMap(['NetworkPolicy:x/p', 3]));
    await flush();
    expect(sink.creates).toBe(2);
    expect(sink.events.size).toBe(2);
    expect(pe.written).toBe(2);
  });

  test('two agents report one problem once: the second create is a conflict, not an error', async () => {
    const sink = new FakeSink();
    const log = new RecordingLogger();
    const a = new ProblemEvents({ sink, nodeName: 'node-a', clock: new ManualClock(), log });
    const b = new ProblemEvents({ sink, nodeName: 'node-b', clock: new ManualClock(), log });
    const policies = policyMap(['NetworkPolicy:x/p', 1]);
    a.report([bad('NetworkPolicy:x/p', 'spec.egress[1].to[0]')], policies);
    b.report([bad('NetworkPolicy:x/p', 'spec.egress[1].to[0]')], policies);
    await flush();
    expect(sink.creates).toBe(2);
    expect(sink.events.size).toBe(1);
    expect(a.written + b.written).toBe(2);
    expect(log.count('writing policy problem event failed')).toBe(0);
  });

  test('rate limit: a burst, then one per refill interval; problems gone meanwhile are skipped', async () => {
    const sink = new FakeSink();
    const clock = new ManualClock();
    const pe = new ProblemEvents({ sink, nodeName: 'n', clock, burst: 2, refillMs: 1000 });
    const keys = ['a', 'b', 'c', 'd', 'e'].map((n) => `NetworkPolicy:x/${n}`);
    const policies = policyMap(...keys.map((k): [string, number] => [k, 1]));
    const problems = keys.map((k) => bad(k, 'spec.podSelector'));
    pe.report(problems, policies);
    await clock.advance(0);
    expect(sink.creates).toBe(2);
    await clock.advance(999);
    expect(sink.creates).toBe(2);
    await clock.advance(1);
    expect(sink.creates).toBe(3);
    // 'd' is fixed before its turn: never written.
    pe.report(problems.filter((p) => !p.policy.endsWith('/d')), policies);
    await clock.advance(5000);
    expect([...sink.events.values()].map((e) => e.involvedObject.name).sort()).toEqual(['a', 'b', 'c', 'e']);
  });

  test('invalid options are refused', () => {
    expect(() => new ProblemEvents({ sink: new FakeSink(), nodeName: 'n', burst: 0 })).toThrow(/must be positive/);
  });
});

describe('problem events through the in-repo API server', () => {
  let server: ApiServer;
  let dir: string;
  const cps: KubernetesControlPlane[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pal-events-'));
    server = await startApiServer({ crdFiles: [new URL('../../../manifests/crds.yaml', import.meta.url).pathname] });
    await server.writeKubeconfig(join(dir, 'kubeconfig'));
    server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } });
    // Two agents (nodes), neither with an L7 proxy: `http` rules are unsupported here.
    for (const node of ['node-0', 'node-1']) {
      const cp = await createKubernetesControlPlane({
        kubeconfig: join(dir, 'kubeconfig'), nodeName: node, datapath: new MemoryDatapath(), minIntervalMs: 1, maxDelayMs: 5,
      });
      cps.push(cp);
      await cp.start();
      await cp.whenReady();
    }
  });

  afterAll(async () => {
    for (const cp of cps) await cp.stop();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('an unsupported field becomes one Event on the policy, whichever agents saw it', async () => {
    server.create({
      apiVersion: 'palisade.dev/v1alpha1', kind: 'PalisadeNetworkPolicy', metadata: { name: 'web-l7', namespace: 'x' },
      spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ ports: [{ port: 80, http: [{ method: 'GET' }] }] }] },
    });
    const rv = server.resourceVersion();
    for (const cp of cps) await cp.waitFor(rv, 10_000);
    const problemEvents = () => server.list('v1', 'Event', 'x')
      .filter((e) => (e as unknown as CoreEvent).reason === PROBLEM_EVENT_REASON) as unknown as CoreEvent[];
    await eventually(() => problemEvents().length > 0);
    // Both agents have reported (or found the other's report) by now.
    await new Promise((r) => setTimeout(r, 100));
    const evs = problemEvents();
    expect(evs).toHaveLength(1);
    expect(evs[0]!.involvedObject).toMatchObject({
      kind: 'PalisadeNetworkPolicy', apiVersion: 'palisade.dev/v1alpha1', namespace: 'x', name: 'web-l7',
      fieldPath: 'spec.ingress[0].ports[0].http',
    });
    expect(evs[0]!.message).toContain('not supported on this node');
    expect(evs[0]!.type).toBe('Warning');
    expect(cps.every((cp) => cp.status().problems.some((p) => p.policy === 'PalisadeNetworkPolicy:x/web-l7'))).toBe(true);
  });
});
