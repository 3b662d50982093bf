/**
 * Generates test/conformance/scenarios/*.yaml from the case list in cases.ts.
 *
 *   node test/conformance/gen.ts          (Node 24 runs TypeScript directly)
 *
 * Each case is one upstream e2e NetworkPolicy test (kubernetes test/e2e/network/netpol),
 * restated on the full upstream model (namespaces x, y, z; pods a, b, c; ports 80/81
 * TCP+UDP; pods spread over two nodes) with its expectation written as reachability
 * rules. The generator turns the rules into `expect` truth tables, and chains the cases
 * of one file into one scenario: each case starts by deleting the previous case's
 * policies and restoring the labels it changed, so one lab serves many cases.
 * Every step of the upstream files is played twice: probing pod IPs, then (a copy with
 * `target: service`, no writes) probing each pod through its ClusterIP Service
 * `s-<ns>-<pod>`, as upstream's agnhost probes do. `service-ports.yaml` is a Service
 * case of its own (renderServicePorts). The generated files are committed; a unit test
 * checks they are up to date.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { files, MODEL_PODS, type Case, type Check, type PodName } from './cases.ts';

function matrix(pods: readonly PodName[], allowed: (from: PodName, to: PodName) => boolean): string {
  const width = Math.max(...pods.map((p) => p.length)) + 2;
  const pad = (s: string) => s.padEnd(width);
  const rows = [[pad('-'), ...pods.map(pad)].join('').trimEnd()];
  for (const f of pods) rows.push([pad(f), ...pods.map((t) => pad(f === t ? '-' : allowed(f, t) ? '.' : 'X'))].join('').trimEnd());
  return `${rows.join('\n')}\n`;
}

const PORTS = [80, 81].flatMap((port) => (['TCP', 'UDP'] as const).map((protocol) => ({
  name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol,
})));

function podObject(p: PodName, labels: Record<string, string>): Record<string, unknown> {
  const [ns, name] = p.split('/');
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels } };
}

/**
 * `viaService`: follow each step with its `target: service` copy (the same matrices,
 * through the ClusterIPs). Off for the outside-host file: a host outside the cluster has
 * no ClusterIP to probe (and its traffic to one is kube-proxy's, docs/services.md).
 */
export function render(title: string, cases: readonly Case[], outside = false, viaService = !outside): string {
  const modelPods: PodName[] = outside ? ['outside/host', ...MODEL_PODS] : MODEL_PODS;
  const steps: Record<string, unknown>[] = [];
  let live: { namespace: string; name: string; kind: string }[] = [];
  let relabelled = new Map<PodName, Record<string, string>>();
  let nsRelabelled = new Set<string>();
  for (const c of cases) {
    c.steps.forEach((s, i) => {
      const step: Record<string, unknown> = { name: `${c.title}${c.steps.length > 1 ? ` [${i + 1}/${c.steps.length}: ${s.name}]` : ''}` };
      const del = [...(s.delete ?? [])];
      const apply: Record<string, unknown>[] = [];
      if (i === 0) {
        // Reset: the previous case's policies, pod labels and namespace labels.
        del.unshift(...live.map((p) => ({ kind: p.kind, namespace: p.namespace, name: p.name })));
        for (const [p] of relabelled) apply.push(podObject(p, { pod: p.split('/')[1]! }));
        for (const ns of nsRelabelled) apply.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: {} } });
        live = [];
        relabelled = new Map();
        nsRelabelled = new Set();
      }
      for (const d of s.delete ?? []) live = live.filter((p) => !(p.name === d.name && p.namespace === d.namespace && p.kind === d.kind));
      for (const o of s.apply ?? []) {
        const md = o.metadata as { name: string; namespace?: string; labels?: Record<string, string> };
        if (o.kind === 'Pod' && s.relabel !== false) relabelled.set(`${md.namespace}/${md.name}` as PodName, md.labels ?? {});
        if (o.kind === 'Namespace') nsRelabelled.add(md.name);
        if (o.kind === 'NetworkPolicy' && !live.some((p) => p.name === md.name && p.namespace === md.namespace)) {
          live.push({ kind: 'NetworkPolicy', namespace: md.namespace!, name: md.name });
        }
        apply.push(o);
      }
      if (del.length) step.delete = del;
      if (apply.length) step.apply = apply;
      const pods = s.pods ?? modelPods;
      step.probes = s.checks.map((k: Check) => ({ port: k.port, protocol: k.protocol }));
      step.expect = s.checks.map((k: Check) => ({
        port: k.port, protocol: k.protocol, matrix: matrix(pods, (f, t) => k.reach.allowed(f, t)),
      }));
      steps.push(step);
      if (viaService) {
        steps.push({ name: `${String(step.name)} (via Service)`, target: 'service', probes: step.probes, expect: step.expect });
      }
    });
  }
  const namespaces: Record<string, Record<string, string>> = { x: {}, y: {}, z: {} };
  const doc = {
    name: title,
    nodes: 2,
    ...(outside ? { outside: true } : {}),
    namespaces,
    pods: MODEL_PODS.map((p) => {
      const [ns, name] = p.split('/');
      return { namespace: ns, name, labels: { pod: name }, ports: PORTS };
    }),
    steps,
  };
  const header = `# GENERATED by test/conformance/gen.ts from test/conformance/cases.ts: do not edit.\n# ${title}: ${cases.map((c) => c.title).join('; ')}\n`;
  return header + stringify(doc, { lineWidth: 0, blockQuote: 'literal', aliasDuplicateObjects: false });
}

/**
 * Service port != targetPort, and a named targetPort whose number differs between the
 * backends of one Service: s-x-b selects x/b (http = 8080) and x/c (http = 9090) on port
 * 80; s-x-c maps 80 to the number 9090; s-x-d maps 80 to x/d's `other` (7000). No backend
 * listens on 80. Policies name the port `http` (resolved per destination pod) or the
 * Service port 80, and every cell has one answer whichever backend a flow lands on.
 */
export function renderServicePorts(): string {
  const pods: PodName[] = ['x/a', 'x/b', 'x/c', 'x/d'];
  const tcpPort = (name: string, containerPort: number) => ({ name, containerPort, protocol: 'TCP' });
  const service = (name: string, selector: Record<string, string>, targetPort: string | number) => ({
    apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'x' },
    spec: { type: 'ClusterIP', selector, ports: [{ name: 'web', port: 80, protocol: 'TCP', targetPort }] },
  });
  const probes = [{ port: 80, protocol: 'TCP' }];
  const expectRows = (allowed: (f: PodName, t: PodName) => boolean) => [{ port: 80, protocol: 'TCP', matrix: matrix(pods, allowed) }];
  const policy = (name: string, spec: Record<string, unknown>) =>
    ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'x' }, spec });
  const web = (p: PodName) => p === 'x/b' || p === 'x/c';
  const doc = {
    name: 'service-ports',
    nodes: 2,
    namespaces: { x: {} },
    pods: [
      { namespace: 'x', name: 'a', labels: { pod: 'a' }, ports: [tcpPort('http', 8000)] },
      { namespace: 'x', name: 'b', labels: { pod: 'b', app: 'web' }, ports: [tcpPort('http', 8080)] },
      { namespace: 'x', name: 'c', labels: { pod: 'c', app: 'web' }, ports: [tcpPort('http', 9090)] },
      { namespace: 'x', name: 'd', labels: { pod: 'd' }, ports: [tcpPort('other', 7000)] },
    ],
    services: [
      service('s-x-a', { pod: 'a' }, 'http'),
      service('s-x-b', { app: 'web' }, 'http'),
      service('s-x-c', { pod: 'c' }, 9090),
      service('s-x-d', { pod: 'd' }, 'other'),
    ],
    steps: [
      { name: 'no policy: every Service answers on port 80 from its targetPort', target: 'service', probes,
        expect: expectRows(() => true) },
      { name: 'ingress to app=web on the named port http from x/a and app=web only', target: 'service', probes,
        apply: [policy('web-http', {
          podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }, { podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 'http', protocol: 'TCP' }] }],
        })],
        expect: expectRows((f, t) => !web(t) || f === 'x/a' || web(f)) },
      { name: 'egress of x/a to the named port http only: backends on 8080 and 9090, not 7000', target: 'service', probes,
        delete: [{ kind: 'NetworkPolicy', namespace: 'x', name: 'web-http' }],
        apply: [policy('a-http', {
          podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'],
          egress: [{ ports: [{ port: 'http', protocol: 'TCP' }] }],
        })],
        expect: expectRows((f, t) => f !== 'x/a' || t !== 'x/d') },
      { name: 'egress of x/a to port 80 only: the Service port opens no backend', target: 'service', probes,
        apply: [policy('a-http', {
          podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'],
          egress: [{ ports: [{ port: 80, protocol: 'TCP' }] }],
        })],
        expect: expectRows((f) => f !== 'x/a') },
    ],
  };
  const header = '# GENERATED by test/conformance/gen.ts (renderServicePorts): do not edit.\n' +
    '# service-ports: Service port != targetPort; a named targetPort with a different number per backend\n';
  return header + stringify(doc, { lineWidth: 0, blockQuote: 'literal', aliasDuplicateObjects: false });
}

export function renderAll(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of files) out[`${f.file}.yaml`] = render(f.file, f.cases, f.outside ?? false);
  out['service-ports.yaml'] = renderServicePorts();
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = join(import.meta.dirname, 'scenarios');
  for (const [name, text] of Object.entries(renderAll())) {
    writeFileSync(join(dir, name), text);
    console.log(`wrote ${join(dir, name)}`);
  }
}
