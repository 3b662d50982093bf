/** Smaller pieces of the lab API server: selectors, printing helpers, versions, ClusterIPs, protobuf. */
import { describe, expect, it } from 'vitest';
import { decodeProtobufObject } from '../../../pkg/apiserver/protobuf.ts';
import { sortVersions } from '../../../pkg/apiserver/registry.ts';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from '../../../pkg/apiserver/selectors.ts';
import { ClusterIpAllocator } from '../../../pkg/apiserver/strategy.ts';
import { humanDuration, jsonPath } from '../../../pkg/apiserver/table.ts';

describe('label selectors', () => {
  const labels = { app: 'web', 'example.com/tier': 'front', empty: '' };
  it.each([
    ['', true],
    ['app=web', true],
    ['app = web', true],
    ['app==web,example.com/tier=front', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (db, web)', true],
    ['app notin (web)', false],
    ['missing notin (web)', true],
    ['missing in (web)', false],
    ['empty', true],
    ['empty=', true],
    ['!missing', true],
    ['!app', false],
    ['app,!missing,example.com/tier in (front)', true],
  ])('%j on %j', (sel, want) => {
    expect(matchLabels(parseLabelSelector(sel), labels)).toBe(want);
  });
  it.each(['a b', 'app in (a', 'x=y=z', '=v', 'bad key!=1', 'a,,b'])('rejects %j when malformed', (sel) => {
    expect(() => parseLabelSelector(sel)).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe('field selectors', () => {
  const obj = { metadata: { name: 'p', namespace: 'ns' }, spec: { nodeName: 'n1', hostNetwork: false } };
  const allowed = ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'spec.hostNetwork'];
  it.each([
    ['metadata.name=p', true],
    ['metadata.name==p,metadata.namespace=ns', true],
    ['spec.nodeName!=n1', false],
    ['spec.nodeName=', false],
    ['spec.hostNetwork=false', true],
  ])('%s', (sel, want) => {
    expect(matchFields(parseFieldSelector(sel, allowed), obj)).toBe(want);
  });
  it('rejects fields the resource does not index', () => {
    expect(() => parseFieldSelector('status.podIP=1', allowed)).toThrow('field label not supported: status.podIP');
  });
});

describe('printing helpers', () => {
  it.each([
    [-5000, '<invalid>'],
    [0, '0s'],
    [119_000, '119s'],
    [125_000, '2m5s'],
    [600_000, '10m'],
    [3 * 3600_000 + 60_000, '3h1m'],
    [10 * 3600_000, '10h'],
    [50 * 3600_000, '2d2h'],
    [400 * 86400_000, '400d'],
    [3 * 365 * 86400_000, '3y'],
  ])('humanDuration(%d) = %s', (ms, want) => {
    expect(humanDuration(ms)).toBe(want);
  });
  it('evaluates printer-column JSONPath', () => {
    const o = { spec: { a: [{ b: 1 }, { b: 2 }], 'x.y': 'dotted' }, status: { c: 'ok' } };
    expect(jsonPath(o, '.status.c')).toEqual(['ok']);
    expect(jsonPath(o, '{.spec.a[1].b}')).toEqual([2]);
    expect(jsonPath(o, '.spec.a[*].b')).toEqual([1, 2]);
    expect(jsonPath(o, ".spec['x.y']")).toEqual(['dotted']);
    expect(jsonPath(o, '.spec.missing')).toEqual([]);
  });
});

describe('versions and ClusterIPs', () => {
  it('orders versions GA > beta > alpha, higher first', () => {
    expect(sortVersions(['v1alpha1', 'v1beta1', 'v2', 'v1', 'v1beta2', 'v2alpha1'])).toEqual(['v2', 'v1', 'v1beta2', 'v1beta1', 'v2alpha1', 'v1alpha1']);
  });
  it('allocates the lowest free address, never network or broadcast, and reuses released ones', () => {
    const a = new ClusterIpAllocator('10.0.0.0/30');
    expect(a.allocate()).toBe('10.0.0.1');
    expect(a.allocate()).toBe('10.0.0.2');
    expect(a.allocate()).toBeUndefined();
    a.release('10.0.0.1');
    expect(a.claim('10.0.0.1')).toBe(true);
    expect(a.claim('10.0.0.1')).toBe(false);
    expect(a.contains('10.0.0.3')).toBe(false);
    expect(() => new ClusterIpAllocator('10.0.0.0')).toThrow(/invalid service cidr/);
  });
});

describe('protobuf bodies', () => {
  const envelope = (apiVersion: string, kind: string, raw: Buffer) => {
    const str = (n: number, s: string | Buffer) => {
      const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
      return Buffer.concat([Buffer.from([(n << 3) | 2, b.length]), b]);
    };
    const tm = Buffer.concat([str(1, apiVersion), str(2, kind)]);
    return Buffer.concat([Buffer.from('k8s\0', 'latin1'), str(1, tm), str(2, raw)]);
  };
  it('decodes a ConfigMap and drops zero values', () => {
    const meta = Buffer.concat([Buffer.from([0x0a, 1]), Buffer.from('c'), Buffer.from([0x12, 0])]);
    const entry = Buffer.from([0x0a, 1, 0x6b, 0x12, 1, 0x76]);
    const raw = Buffer.concat([Buffer.from([0x0a, meta.length]), meta, Buffer.from([0x12, entry.length]), entry]);
    expect(decodeProtobufObject(envelope('v1', 'ConfigMap', raw))).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } });
  });
  it('refuses unknown kinds and unknown fields with 415', () => {
    expect(() => decodeProtobufObject(envelope('apps/v1', 'Deployment', Buffer.alloc(0)))).toThrow(expect.objectContaining({ code: 415 }));
    expect(() => decodeProtobufObject(envelope('v1', 'ConfigMap', Buffer.from([0x48, 1])))).toThrow(/unknown field 9/);
    expect(() => decodeProtobufObject(Buffer.from('{}'))).toThrow(expect.objectContaining({ code: 415 }));
  });
});

describe('server-side apply field sets', () => {
  it('records keyed list elements, set-like lists and atomic lists in FieldsV1 form', async () => {
    const { fieldSet } = await import('../../../pkg/apiserver/apply.ts');
    const { PATCH_SCHEMAS } = await import('../../../pkg/apiserver/patch.ts');
    const set = fieldSet({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', labels: { a: '1' }, finalizers: ['x/y'] },
      spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80 }] }], tolerations: [{ key: 'k' }] },
    }, PATCH_SCHEMAS.Pod ?? {});
    expect(set).toEqual({
      'f:metadata': { 'f:labels': { 'f:a': {} }, 'f:finalizers': { 'v:"x/y"': {} } },
      'f:spec': {
        'f:containers': { 'k:{"name":"c"}': { '.': {}, 'f:name': {}, 'f:image': {}, 'f:ports': { 'k:{"containerPort":80}': { '.': {}, 'f:containerPort': {} } } } },
        'f:tolerations': {},
      },
    });
  });
});
