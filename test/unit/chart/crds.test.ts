// The CRDs in charts/palisade/crds/ must be valid apiextensions.k8s.io/v1 objects with
// structural schemas (a real API server rejects them otherwise), their printer columns
// must point at fields that exist, and their schemas must accept and reject what the docs
// say. manifests/crds.yaml must be the same CRDs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { jsonPathInSchema, rootErrors, structuralErrors, validateValue, type Schema } from './crd-check.ts';

const root = new URL('../../..', import.meta.url).pathname;
const crdDir = join(root, 'charts/palisade/crds');

interface Crd {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; listKind: string; shortNames?: string[]; categories?: string[] };
    versions: {
      name: string; served: boolean; storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

function loadCrds(): Map<string, Crd> {
  const out = new Map<string, Crd>();
  for (const f of readdirSync(crdDir).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(crdDir, f), 'utf8'))) {
      expect(doc.errors, f).toEqual([]);
      const crd = doc.toJS() as Crd;
      out.set(crd.metadata.name, crd);
    }
  }
  return out;
}

const crds = loadCrds();
function schemaOf(name: string): Schema {
  const crd = crds.get(name);
  if (!crd) throw new Error(`crd ${name} missing`);
  return crd.spec.versions[0]!.schema.openAPIV3Schema;
}

describe('structural schema checker', () => {
  // The checks below are only worth something if the checker can fail.
  it('flags a schema node without type, a bad list type and a typed junctor', () => {
    const bad: Schema = {
      type: 'object',
      properties: {
        a: { description: 'no type' },
        b: { type: 'array', items: { type: 'object' }, 'x-kubernetes-list-type': 'set' },
        c: { 'x-kubernetes-int-or-string': true, type: 'string' },
        d: { type: 'string', anyOf: [{ type: 'string' }] },
        e: { type: 'string', 'x-kubernetes-map-type': 'atomic' },
      },
    };
    const errs = structuralErrors(bad).join('\n');
    expect(errs).toContain('$.a: missing type');
    expect(errs).toContain('$.b: x-kubernetes-list-type set needs scalar items');
    expect(errs).toContain('$.c: x-kubernetes-int-or-string must not set type');
    expect(errs).toContain('$.d.anyOf[0]: type is not allowed inside a junctor');
    expect(errs).toContain('$.e: x-kubernetes-map-type on a non-object');
  });
  it('resolves printer column paths only when the field exists', () => {
    const s: Schema = { type: 'object', properties: { status: { type: 'object', properties: { x: { type: 'string' } } } } };
    expect(jsonPathInSchema(s, '.status.x')).toBe(true);
    expect(jsonPathInSchema(s, '.status.y')).toBe(false);
  });
});

describe('CRDs', () => {
  it('are exactly the three Palisade CRDs', () => {
    expect([...crds.keys()].sort()).toEqual([
      'palisadeendpoints.palisade.dev',
      'palisadenetworkpolicies.palisade.dev',
      'palisadenodes.palisade.dev',
    ]);
  });

  for (const [name, crd] of crds) {
    describe(name, () => {
      it('is a v1 CRD whose name is plural.group', () => {
        expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
        expect(crd.kind).toBe('CustomResourceDefinition');
        expect(name).toBe(`${crd.spec.names.plural}.${crd.spec.group}`);
        expect(crd.spec.group).toBe('palisade.dev');
        expect(crd.spec.names.listKind).toBe(`${crd.spec.names.kind}List`);
        expect(crd.spec.names.categories).toContain('palisade');
      });
      it('has one served storage version v1alpha1', () => {
        expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
      });
      it('has a structural schema', () => {
        const s = schemaOf(name);
        expect([...rootErrors(s), ...structuralErrors(s)]).toEqual([]);
      });
      it('has printer columns that resolve in the schema, with valid types and unique names', () => {
        const v = crd.spec.versions[0]!;
        const cols = v.additionalPrinterColumns ?? [];
        expect(cols.length).toBeGreaterThan(0);
        for (const c of cols) {
          expect(jsonPathInSchema(v.schema.openAPIV3Schema, c.jsonPath), `${c.name} ${c.jsonPath}`).toBe(true);
          expect(['integer', 'number', 'string', 'boolean', 'date']).toContain(c.type);
        }
        const names = cols.map((c) => c.name.toLowerCase());
        expect(new Set(names).size).toBe(names.length);
      });
    });
  }

  it('scopes and short names are as documented', () => {
    const pnp = crds.get('palisadenetworkpolicies.palisade.dev')!;
    const pep = crds.get('palisadeendpoints.palisade.dev')!;
    const pn = crds.get('palisadenodes.palisade.dev')!;
    expect([pnp.spec.scope, pnp.spec.names.shortNames]).toEqual(['Namespaced', ['pnp']]);
    expect([pep.spec.scope, pep.spec.names.shortNames]).toEqual(['Namespaced', ['pep']]);
    expect(pn.spec.scope).toBe('Cluster');
    expect(pep.spec.versions[0]!.subresources?.status).toEqual({});
    expect(pn.spec.versions[0]!.subresources?.status).toEqual({});
  });

  it('PalisadeEndpoint columns read IDENTITY INGRESS EGRESS POLICIES REVISION IP NODE STATE AGE', () => {
    const cols = crds.get('palisadeendpoints.palisade.dev')!.spec.versions[0]!.additionalPrinterColumns!;
    expect(cols.filter((c) => !c.priority).map((c) => c.name.toUpperCase()))
      .toEqual(['IDENTITY', 'INGRESS', 'EGRESS', 'POLICIES', 'REVISION', 'IP', 'NODE', 'STATE', 'AGE']);
  });
});

describe('PalisadeNetworkPolicy schema', () => {
  const schema = schemaOf('palisadenetworkpolicies.palisade.dev');
  const pnp = (spec: unknown) => ({
    apiVersion: 'palisade.dev/v1alpha1', kind: 'PalisadeNetworkPolicy',
    metadata: { name: 'p', namespace: 'x' }, spec,
  });

  it('accepts a NetworkPolicy spec with HTTP rules, named and numeric ports, ranges and ipBlocks', () => {
    const ok = pnp({
      podSelector: { matchLabels: { app: 'api' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{
        from: [
          { podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['fe'] }] }, namespaceSelector: {} },
          { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
        ],
        ports: [{
          protocol: 'TCP', port: 'http',
          http: [{ method: 'GET|HEAD', path: '/api/.*', host: 'api.example', headers: [{ name: 'X-Team', value: 'a' }, { name: 'X-Trace' }] }],
        }],
      }],
      egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'b' } } }], ports: [{ protocol: 'UDP', port: 53 }, { port: 8000, endPort: 8080 }] }],
    });
    expect(validateValue(schema, ok)).toEqual([]);
  });

  const rejects: [string, unknown, string][] = [
    ['a missing podSelector', pnp({}), '$.spec: podSelector is required'],
    ['a missing spec', { apiVersion: 'palisade.dev/v1alpha1', kind: 'PalisadeNetworkPolicy', metadata: {} }, '$: spec is required'],
    ['protocol ICMP', pnp({ podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] }), 'must be one of TCP, UDP, SCTP'],
    ['a boolean port', pnp({ podSelector: {}, egress: [{ ports: [{ port: true }] }] }), 'must be an integer or a string'],
    ['endPort as a string', pnp({ podSelector: {}, egress: [{ ports: [{ port: 80, endPort: '90' }] }] }), 'endPort: must be an integer'],
    ['endPort 70000', pnp({ podSelector: {}, egress: [{ ports: [{ port: 80, endPort: 70000 }] }] }), 'must be <= 65535'],
    ['an ipBlock without cidr', pnp({ podSelector: {}, egress: [{ to: [{ ipBlock: { except: ['10.0.0.0/8'] } }] }] }), 'cidr is required'],
    ['a header without name', pnp({ podSelector: {}, ingress: [{ ports: [{ port: 80, http: [{ headers: [{ value: 'v' }] }] }] }] }), 'name is required'],
    ['a bad selector operator', pnp({ podSelector: { matchExpressions: [{ key: 'k', operator: 'Like' }] } }), 'must be one of In, NotIn, Exists, DoesNotExist'],
    ['policyType Both', pnp({ podSelector: {}, policyTypes: ['Both'] }), 'must be one of Ingress, Egress'],
    ['a typo in a port field', pnp({ podSelector: {}, ingress: [{ ports: [{ prot: 'TCP' }] }] }), 'unknown field prot'],
  ];
  for (const [what, value, expected] of rejects) {
    it(`rejects ${what}`, () => {
      expect(validateValue(schema, value).join('\n')).toContain(expected);
    });
  }
});

describe('PalisadeEndpoint and PalisadeNode status schemas', () => {
  it('accept the status the agent writes', () => {
    const pep = {
      apiVersion: 'palisade.dev/v1alpha1', kind: 'PalisadeEndpoint', metadata: { name: 'a', namespace: 'x' },
      status: {
        endpointId: 7, identity: 40012, ingressEnforcement: 'enabled', egressEnforcement: 'disabled',
        policies: ['NetworkPolicy:x/deny', 'PalisadeNetworkPolicy:x/l7'], policyCount: 2, realizedRevision: 12,
        ipv4: '10.244.1.5', node: 'kind-worker', containerId: 'abc', interface: 'lxc1234', state: 'ready',
        message: '', lastUpdated: '2026-11-27T19:00:00Z',
      },
    };
    expect(validateValue(schemaOf('palisadeendpoints.palisade.dev'), pep)).toEqual([]);
    const pn = {
      apiVersion: 'palisade.dev/v1alpha1', kind: 'PalisadeNode', metadata: { name: 'kind-worker' },
      status: {
        agentVersion: '0.1.0', health: 'healthy', realizedRevision: 12, endpoints: 3, datapathMode: 'tcx',
        mapPressure: 4, maps: [{ name: 'policy', entries: 400, maxEntries: 10000, pressure: 4 }],
        lastHeartbeat: '2026-11-27T19:00:00Z',
      },
    };
    expect(validateValue(schemaOf('palisadenodes.palisade.dev'), pn)).toEqual([]);
  });
  it('reject enforcement as a boolean and an unknown state', () => {
    const s = schemaOf('palisadeendpoints.palisade.dev');
    const errs = validateValue(s, { status: { ingressEnforcement: true, state: 'running' } }).join('\n');
    expect(errs).toContain('$.status.ingressEnforcement: must be a string');
    expect(errs).toContain('$.status.state: must be one of waiting, ready, failed, deleting');
  });
});

describe('manifests/crds.yaml', () => {
  it('holds the same CRDs as the chart', () => {
    const docs = parseAllDocuments(readFileSync(join(root, 'manifests/crds.yaml'), 'utf8'))
      .map((d) => d.toJS() as Crd).filter((d) => d);
    expect(new Map(docs.map((d) => [d.metadata.name, d]))).toEqual(crds);
  });
});
