/* eslint-disable @typescript-eslint/no-explicit-any -- patch results are free-form JSON inspected by assertions */
/** The three PATCH formats, table-driven, including failures that must leave the input untouched. */
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../pkg/apiserver/errors.ts';
import { jsonPatch, mergePatch, PATCH_SCHEMAS, strategicMergePatch } from '../../../pkg/apiserver/patch.ts';

const pod = () => ({
  metadata: { name: 'p', labels: { a: '1', b: '2' }, finalizers: ['x/one'] },
  spec: {
    containers: [
      { name: 'app', image: 'app:1', ports: [{ containerPort: 80, protocol: 'TCP' }], env: [{ name: 'A', value: '1' }] },
      { name: 'side', image: 'side:1' },
    ],
    tolerations: [{ key: 't1' }],
    nodeName: 'n1',
  },
});

describe('merge patch (RFC 7386)', () => {
  it.each([
    ['sets and deletes keys', { metadata: { labels: { a: null, c: '3' } } }, (o: any) => expect(o.metadata.labels).toEqual({ b: '2', c: '3' })],
    ['replaces lists whole', { spec: { containers: [{ name: 'only' }] } }, (o: any) => expect(o.spec.containers).toEqual([{ name: 'only' }])],
    ['null at the top of a subtree removes it', { spec: null }, (o: any) => expect(o.spec).toBeUndefined()],
  ])('%s', (_n, patch, check) => {
    const input = pod();
    const before = structuredClone(input);
    check(mergePatch(input, patch));
    expect(input).toEqual(before);
  });
});

describe('json patch (RFC 6902)', () => {
  it.each([
    ['add to a map', [{ op: 'add', path: '/metadata/labels/c', value: '3' }], (o: any) => expect(o.metadata.labels.c).toBe('3')],
    ['add at list end with -', [{ op: 'add', path: '/spec/tolerations/-', value: { key: 't2' } }], (o: any) => expect(o.spec.tolerations).toEqual([{ key: 't1' }, { key: 't2' }])],
    ['insert at index', [{ op: 'add', path: '/spec/tolerations/0', value: { key: 't0' } }], (o: any) => expect(o.spec.tolerations[0]).toEqual({ key: 't0' })],
    ['remove', [{ op: 'remove', path: '/spec/nodeName' }], (o: any) => expect(o.spec.nodeName).toBeUndefined()],
    ['replace', [{ op: 'replace', path: '/spec/containers/1/image', value: 'side:2' }], (o: any) => expect(o.spec.containers[1].image).toBe('side:2')],
    ['move', [{ op: 'move', from: '/spec/nodeName', path: '/metadata/labels/node' }], (o: any) => {
      expect(o.metadata.labels.node).toBe('n1');
      expect(o.spec.nodeName).toBeUndefined();
    }],
    ['copy', [{ op: 'copy', from: '/spec/nodeName', path: '/spec/hostname' }], (o: any) => expect(o.spec.hostname).toBe('n1')],
    ['escaped pointer', [{ op: 'add', path: '/metadata/labels/example.com~1role', value: 'x' }], (o: any) => expect(o.metadata.labels['example.com/role']).toBe('x')],
    ['test that passes', [{ op: 'test', path: '/spec/nodeName', value: 'n1' }, { op: 'remove', path: '/metadata/labels/a' }], (o: any) => expect(o.metadata.labels.a).toBeUndefined()],
  ])('%s', (_n, ops, check) => {
    const input = pod();
    const before = structuredClone(input);
    check(jsonPatch(input, ops));
    expect(input).toEqual(before);
  });

  it.each([
    ['remove of a missing path', [{ op: 'remove', path: '/metadata/labels/zzz' }]],
    ['replace of a missing path', [{ op: 'replace', path: '/spec/missing', value: 1 }]],
    ['failing test', [{ op: 'add', path: '/metadata/labels/c', value: '3' }, { op: 'test', path: '/spec/nodeName', value: 'n2' }]],
    ['index out of range', [{ op: 'add', path: '/spec/tolerations/5', value: {} }]],
  ])('%s fails with 422 and changes nothing', (_n, ops) => {
    const input = pod();
    const before = structuredClone(input);
    let err: unknown;
    try {
      jsonPatch(input, ops);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe(422);
    expect(input).toEqual(before);
  });

  it('rejects a body that is not a list of operations with 400', () => {
    expect(() => jsonPatch(pod(), { op: 'add' })).toThrow(expect.objectContaining({ code: 400 }));
    expect(() => jsonPatch(pod(), [{ op: 'frobnicate', path: '/a' }])).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe('strategic merge patch', () => {
  const smp = (patch: unknown, target: unknown = pod()) => strategicMergePatch(target, patch, PATCH_SCHEMAS.Pod ?? {}) as any;

  it('merges containers by name and ports by containerPort', () => {
    const o = smp({ spec: { containers: [{ name: 'app', image: 'app:2', ports: [{ containerPort: 443 }] }, { name: 'new', image: 'n' }] } });
    expect(o.spec.containers.map((c: { name: string }) => c.name)).toEqual(['app', 'side', 'new']);
    expect(o.spec.containers[0].image).toBe('app:2');
    expect(o.spec.containers[0].env).toEqual([{ name: 'A', value: '1' }]);
    expect(o.spec.containers[0].ports).toEqual([{ containerPort: 80, protocol: 'TCP' }, { containerPort: 443 }]);
  });

  it('replaces lists without a merge key', () => {
    expect(smp({ spec: { tolerations: [{ key: 'only' }] } }).spec.tolerations).toEqual([{ key: 'only' }]);
  });

  it('null deletes a key, $patch: delete removes a list element', () => {
    const o = smp({ metadata: { labels: { a: null } }, spec: { containers: [{ name: 'side', $patch: 'delete' }] } });
    expect(o.metadata.labels).toEqual({ b: '2' });
    expect(o.spec.containers.map((c: { name: string }) => c.name)).toEqual(['app']);
  });

  it('$patch: replace on a map and on a list', () => {
    expect(smp({ metadata: { labels: { z: '9', $patch: 'replace' } } }).metadata.labels).toEqual({ z: '9' });
    expect(smp({ spec: { containers: [{ name: 'solo', image: 's' }, { $patch: 'replace' }] } }).spec.containers).toEqual([{ name: 'solo', image: 's' }]);
  });

  it('$patch: delete on a map removes it', () => {
    expect(smp({ metadata: { labels: { $patch: 'delete' } } }).metadata.labels).toBeUndefined();
  });

  it('$retainKeys keeps only the listed keys', () => {
    expect(smp({ spec: { $retainKeys: ['containers'], containers: [] } }).spec).toEqual({ containers: pod().spec.containers });
  });

  it('finalizers merge as a set; $deleteFromPrimitiveList removes; $setElementOrder orders', () => {
    const o = smp({
      metadata: { finalizers: ['x/two', 'x/one'] },
      spec: { '$setElementOrder/containers': [{ name: 'new' }, { name: 'side' }], containers: [{ name: 'new', image: 'n' }] },
    });
    expect(o.metadata.finalizers).toEqual(['x/one', 'x/two']);
    // Named elements first in the given order, the unnamed one (app) after them.
    expect(o.spec.containers.map((c: { name: string }) => c.name)).toEqual(['new', 'side', 'app']);
    const f = smp({ metadata: { '$setElementOrder/finalizers': ['x/two', 'x/one'], finalizers: ['x/two'] } });
    expect(f.metadata.finalizers).toEqual(['x/two', 'x/one']);
    expect(smp({ metadata: { '$deleteFromPrimitiveList/finalizers': ['x/one'] } }).metadata.finalizers).toEqual([]);
  });

  it('directives in new subtrees do not leak into the result', () => {
    const o = smp({ spec: { affinity: { nodeAffinity: { $patch: 'replace', required: true } }, volumes: [{ name: 'v', $patch: 'delete' }] } });
    expect(o.spec.affinity).toEqual({ nodeAffinity: { required: true } });
    expect(o.spec.volumes).toEqual([]);
  });

  it('an element without its merge key is a 400', () => {
    expect(() => smp({ spec: { containers: [{ image: 'x' }] } })).toThrow(expect.objectContaining({ code: 400 }));
  });

  it('merges Service ports by port', () => {
    const svc = { spec: { ports: [{ port: 80, targetPort: 8080 }, { port: 443 }] } };
    const o = strategicMergePatch(svc, { spec: { ports: [{ port: 80, targetPort: 9090 }] } }, PATCH_SCHEMAS.Service ?? {}) as any;
    expect(o.spec.ports).toEqual([{ port: 80, targetPort: 9090 }, { port: 443 }]);
  });
});
