import { describe, expect, test } from 'vitest';
import { desiredServices, sameServices } from '../../../pkg/service/desired.ts';
import type { EndpointSlice, Service } from '../../../pkg/service/types.ts';

const svc = (name: string, spec: Service['spec'], ns = 'x'): Service =>
  ({ kind: 'Service', metadata: { name, namespace: ns }, spec });
const slice = (name: string, service: string, ports: EndpointSlice['ports'], endpoints: EndpointSlice['endpoints'],
  extra: Partial<EndpointSlice> = {}, ns = 'x'): EndpointSlice => ({
  kind: 'EndpointSlice', metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4', ports, endpoints, ...extra,
});
const ready = (ip: string, r?: boolean) => ({ addresses: [ip], ...(r === undefined ? {} : { conditions: { ready: r } }) });

describe('desiredServices', () => {
  test('a ClusterIP port with its ready backends; port != targetPort', () => {
    const d = desiredServices(
      [svc('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] })],
      [slice('web-1', 'web', [{ name: 'http', port: 8080, protocol: 'TCP' }], [ready('10.244.0.2'), ready('10.244.0.1')])],
    );
    expect(d.entries).toEqual([{ name: 'x/web:http', ip: '10.96.0.10', port: 80, protocol: 6, affinityTimeoutSec: 0,
      backends: [{ ip: '10.244.0.1', port: 8080 }, { ip: '10.244.0.2', port: 8080 }] }]);
    expect(d.problems).toEqual([]);
  });

  test('a named targetPort resolved differently per backend (two slices)', () => {
    const d = desiredServices(
      [svc('web', { clusterIP: '10.96.0.10', ports: [{ name: 'web', port: 80, targetPort: 'http' }] })],
      [slice('a', 'web', [{ name: 'web', port: 8080 }], [ready('10.244.0.1')]),
        slice('b', 'web', [{ name: 'web', port: 9090 }], [ready('10.244.0.2')])],
    );
    expect(d.entries[0]!.backends).toEqual([{ ip: '10.244.0.1', port: 8080 }, { ip: '10.244.0.2', port: 9090 }]);
  });

  test('only ready endpoints (ready unset counts as ready); no ready one keeps the frontend with no backends', () => {
    const d = desiredServices(
      [svc('web', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] }), svc('empty', { clusterIP: '10.96.0.11', ports: [{ port: 80 }] })],
      [slice('w', 'web', [{ port: 80 }], [ready('10.244.0.1', false), ready('10.244.0.2'), ready('10.244.0.3', true)]),
        slice('e', 'empty', [{ port: 80 }], [ready('10.244.0.4', false)])],
    );
    expect(d.entries.map((e) => [e.ip, e.backends.map((b) => b.ip)])).toEqual([
      ['10.96.0.10', ['10.244.0.2', '10.244.0.3']], ['10.96.0.11', []]]);
  });

  test('TCP, UDP, SCTP ports; slices are matched by port name and protocol', () => {
    const d = desiredServices(
      [svc('dns', { clusterIP: '10.96.0.10', ports: [
        { name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }, { name: 's', port: 99, protocol: 'SCTP' }] })],
      [slice('d', 'dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns-tcp', port: 5354, protocol: 'TCP' }, { name: 's', port: 99, protocol: 'SCTP' }],
        [ready('10.244.0.1')])],
    );
    expect(d.entries.map((e) => `${e.port}/${e.protocol}->${e.backends[0]!.port}`)).toEqual(['53/6->5354', '53/17->5353', '99/132->99']);
  });

  test('SCTP backends whose port differs from the Service port are kept (the datapath updates the CRC32c)', () => {
    const d = desiredServices(
      [svc('s', { clusterIP: '10.96.0.10', ports: [{ port: 99, protocol: 'SCTP', targetPort: 100 }] })],
      [slice('s', 's', [{ port: 100, protocol: 'SCTP' }], [ready('10.244.0.1')])],
    );
    expect(d.entries[0]!.backends).toEqual([{ ip: '10.244.0.1', port: 100 }]);
    expect(d.problems).toEqual([]);
  });

  test('headless, ExternalName, IPv6 and missing ClusterIPs have no frontend; NodePort/LoadBalancer keep their ClusterIP only', () => {
    const d = desiredServices([
      svc('headless', { clusterIP: 'None', ports: [{ port: 80 }] }),
      svc('ext', { type: 'ExternalName', ports: [{ port: 80 }] }),
      svc('v6', { clusterIP: 'fd00::10', ports: [{ port: 80 }] }),
      svc('pending', { ports: [{ port: 80 }] }),
      svc('np', { type: 'NodePort', clusterIP: '10.96.0.20', ports: [{ port: 80 }] }),
      svc('lb', { type: 'LoadBalancer', clusterIP: '10.96.0.21', ports: [{ port: 443 }] }),
    ], []);
    expect(d.entries.map((e) => `${e.ip}:${e.port}`)).toEqual(['10.96.0.20:80', '10.96.0.21:443']);
  });

  test('sessionAffinity ClientIP: the given timeout, else the Kubernetes default 10800 s', () => {
    const d = desiredServices([
      svc('a', { clusterIP: '10.96.0.1', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, ports: [{ port: 80 }] }),
      svc('b', { clusterIP: '10.96.0.2', sessionAffinity: 'ClientIP', ports: [{ port: 80 }] }),
      svc('c', { clusterIP: '10.96.0.3', sessionAffinity: 'None', ports: [{ port: 80 }] }),
    ], []);
    expect(d.entries.map((e) => e.affinityTimeoutSec)).toEqual([60, 10800, 0]);
  });

  test('slices of another namespace, another service or IPv6 are ignored; duplicate addresses once', () => {
    const d = desiredServices(
      [svc('web', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] })],
      [slice('other-ns', 'web', [{ port: 80 }], [ready('10.244.9.9')], {}, 'y'),
        slice('other-svc', 'api', [{ port: 80 }], [ready('10.244.8.8')]),
        slice('v6', 'web', [{ port: 80 }], [ready('fd00::1')], { addressType: 'IPv6' }),
        slice('w1', 'web', [{ port: 80 }], [ready('10.244.0.1')]), slice('w2', 'web', [{ port: 80 }], [ready('10.244.0.1')])],
    );
    expect(d.entries[0]!.backends).toEqual([{ ip: '10.244.0.1', port: 80 }]);
  });

  test('sameServices ignores names, sees backend and affinity changes', () => {
    const base = desiredServices([svc('web', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] })],
      [slice('w', 'web', [{ port: 80 }], [ready('10.244.0.1')])]).entries;
    expect(sameServices(base, base.map((e) => ({ ...e, name: 'other' })))).toBe(true);
    expect(sameServices(base, base.map((e) => ({ ...e, backends: [] })))).toBe(false);
    expect(sameServices(base, base.map((e) => ({ ...e, affinityTimeoutSec: 5 })))).toBe(false);
  });
});
