import { describe, expect, it } from 'vitest';
import { parseScenario, placePods, ScenarioError } from '../../../pkg/lab/scenario.ts';

const minimal = `
name: t
namespaces:
  x: {}
  y: {team: blue, flag: on, short: y}
pods:
  - {namespace: x, name: a, labels: {pod: a}, ports: [{name: serve-80-tcp, containerPort: 80}]}
  - {namespace: y, name: b, labels: {pod: b, version: 1}, node: 1, ports: [{containerPort: 81, protocol: UDP}]}
steps:
  - name: deny
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny, namespace: x}
        spec: {podSelector: {}}
    delete:
      - {kind: NetworkPolicy, namespace: x, name: old}
    probes:
      - {port: 80, protocol: TCP}
      - {port: 80, protocol: TCP, http: {method: GET, path: /public, headers: {x-team: a}}}
    expect:
      - port: 80
        protocol: TCP
        matrix: |
          -   x/a y/b
          x/a -   X
          y/b .   -
`;

function errorOf(text: string): ScenarioError {
  try {
    parseScenario(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError);
    return err as ScenarioError;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario parsing', () => {
  it('reads a full scenario with defaults filled in', () => {
    const s = parseScenario(minimal);
    expect(s.name).toBe('t');
    expect(s.nodes).toBeUndefined();
    expect(s.pods[0]!.ports[0]).toEqual({ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' });
    expect(s.pods[1]!.node).toBe(1);
    const step = s.steps[0]!;
    expect(step.target).toBe('pod');
    expect(step.delete).toEqual([{ kind: 'NetworkPolicy', namespace: 'x', name: 'old' }]);
    expect(step.probes![1]!.http).toEqual({ method: 'GET', path: '/public', headers: { 'x-team': 'a' } });
    expect(step.expect[0]!.matrix.cells['y/b']!['x/a']).toBe('.');
  });

  it('keeps YAML 1.1 booleans (y, on) as strings and stringifies numeric labels', () => {
    const s = parseScenario(minimal);
    expect(s.namespaces.y).toEqual({ team: 'blue', flag: 'on', short: 'y' });
    expect(s.pods[1]!.labels.version).toBe('1');
  });

  it('accepts JSON', () => {
    const s = parseScenario(JSON.stringify({ pods: [{ namespace: 'x', name: 'a', ports: [] }], steps: [{}] }));
    expect(s.namespaces).toEqual({ x: {} });
    expect(s.steps[0]!.name).toBe('step 1');
  });

  it('names an unknown top-level field', () => {
    const e = errorOf('nodez: 2\n');
    expect(e.message).toContain('"nodez"');
  });

  it('names an unknown nested field with its path', () => {
    const e = errorOf('steps:\n  - probes:\n      - {port: 80, prot: TCP}\n');
    expect(e.message).toContain('steps[0].probes[0]');
    expect(e.message).toContain('"prot"');
  });

  it('names an unknown field in a pod port', () => {
    const e = errorOf('pods:\n  - {namespace: x, name: a, ports: [{containerPort: 80, hostPort: 1}]}\n');
    expect(e.path).toBe('pods[0].ports[0]');
    expect(e.message).toContain('"hostPort"');
  });

  it('rejects an unsupported kind in apply', () => {
    const e = errorOf('steps:\n  - apply:\n      - {kind: Deployment, metadata: {name: d, namespace: x}}\n');
    expect(e.path).toBe('steps[0].apply[0].kind');
  });

  it('rejects a malformed expect matrix with its path', () => {
    const e = errorOf('steps:\n  - expect:\n      - {port: 80, protocol: TCP, matrix: "-  x/a\\nx/a - ."}\n');
    expect(e.path).toBe('steps[0].expect[0].matrix');
  });

  it('rejects bad values', () => {
    expect(errorOf('nodes: 0\n').path).toBe('nodes');
    expect(errorOf('pods:\n  - {namespace: X, name: a}\n').path).toBe('pods[0].namespace');
    expect(errorOf('steps:\n  - probes: [{port: 80, protocol: SCTP}]\n').path).toBe('steps[0].probes[0].protocol');
    expect(errorOf('steps:\n  - probes: [{port: 80, protocol: UDP, http: {}}]\n').path).toBe('steps[0].probes[0].http');
    expect(errorOf('steps:\n  - target: node\n').path).toBe('steps[0].target');
    expect(errorOf('pods:\n  - {namespace: x, name: a}\n  - {namespace: x, name: a}\n').message).toContain('duplicate');
    expect(errorOf('a: [\n').message).toContain('not valid YAML');
  });

  it('accepts the outside-host extension and reserves its name', () => {
    expect(parseScenario('outside: true\n').outside).toBe(true);
    expect(errorOf('outside: yes\n').path).toBe('outside');
    expect(errorOf('outside: true\npods: [{namespace: outside, name: host}]\n').message).toContain('reserved');
  });

  it('places pods round-robin unless a node is given', () => {
    const s = parseScenario(`pods:
  - {namespace: x, name: a}
  - {namespace: x, name: b, node: 0}
  - {namespace: x, name: c}
  - {namespace: x, name: d}
`);
    expect(placePods(s.pods, 2)).toEqual([0, 0, 1, 0]);
    expect(() => placePods(parseScenario('pods: [{namespace: x, name: a, node: 3}]').pods, 2)).toThrow(/node 3/);
  });
});
