/**
 * Codec round trips: every entry kind encodes to the bytes the programs read and decodes
 * back to itself; bad entries are rejected with a stable code.
 */
import { describe, expect, test } from 'vitest';
import {
  DatapathError, ERR_INVALID_ENTRY, IPCACHE_V4_PREFIX, POLICY_PREFIX_FIXED, POLICY_PREFIX_PROTO,
  counterIndex, decodeCidr, decodeEndpoint, decodeFlowEvent, decodeIpcache, decodePolicy,
  encodeCidrKey, encodeEndpointKey, encodeEndpointValue, encodeIdentityValue, encodeIpcacheKey,
  encodePolicyKeys, encodePolicyValue, layouts, rangeToPrefixes,
} from '../../../pkg/datapath/codec.ts';
import type { EndpointEntry, PolicyEntry } from '../../../pkg/datapath/types.ts';

const pol = (over: Partial<PolicyEntry> = {}): PolicyEntry => ({
  endpointId: 12, direction: 'ingress', peer: 300, protocol: 6, port: 80, endPort: 80,
  ruleId: 7, proxyPort: 0, ...over,
});

/** The set of ports an LPM key over the port field covers. */
function portsOf(key: Buffer): [number, number] {
  const plen = key.readUInt32LE(0);
  const port = key.readUInt16BE(14);
  const bits = plen - POLICY_PREFIX_PROTO;
  return [port, port + 2 ** (16 - bits) - 1];
}

describe('endpoints', () => {
  test('round trip with both enforcement flags', () => {
    const e: EndpointEntry = { ifindex: 41, endpointId: 9, identity: 70000, ipv4: '10.244.1.5',
      ingressEnforced: true, egressEnforced: false };
    const v = encodeEndpointValue(e);
    expect(v.length).toBe(layouts.endpoint_value.size);
    expect(v.subarray(8, 12)).toEqual(Buffer.from([10, 244, 1, 5])); // network order
    expect(decodeEndpoint(encodeEndpointKey(41), v)).toEqual(e);
  });

  test('a bad address is rejected with a stable code', () => {
    const bad = { ifindex: 1, endpointId: 1, identity: 1, ipv4: '10.0.0.300', ingressEnforced: false, egressEnforced: false };
    expect(() => encodeEndpointValue(bad)).toThrow(DatapathError);
    try { encodeEndpointValue(bad); } catch (e) { expect((e as DatapathError).code).toBe(ERR_INVALID_ENTRY); }
  });
});

describe('ipcache and cidrs', () => {
  test.each(['10.244.1.5/32', '10.0.0.0/8', '0.0.0.0/0'])('ipcache %s round trips as v4-mapped', (cidr) => {
    const k = encodeIpcacheKey(cidr);
    expect(k.readUInt32LE(0)).toBe(IPCACHE_V4_PREFIX + Number(cidr.split('/')[1]));
    expect(k.subarray(4, 16)).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]));
    expect(decodeIpcache(k, encodeIdentityValue(256))).toEqual({ cidr, identity: 256 });
  });

  test('host bits, bad lengths and IPv6 are rejected', () => {
    for (const c of ['10.0.0.1/8', '10.0.0.0/33', '10.0.0.0', 'fd00::/8', '10.0.0.0/8/1']) {
      expect(() => encodeIpcacheKey(c), c).toThrow(/invalid datapath entry/);
    }
  });

  test('cidr entry round trips with endpoint and direction', () => {
    const e = { endpointId: 3, direction: 'egress' as const, cidr: '192.168.0.0/16', identity: 0x01000002 };
    expect(decodeCidr(encodeCidrKey(e), encodeIdentityValue(e.identity))).toEqual(e);
  });
});

describe('policy', () => {
  test('protocol any is one key stopping after the fixed part', () => {
    const keys = encodePolicyKeys(pol({ protocol: 0, port: 0, endPort: 0 }));
    expect(keys.map((k) => k.readUInt32LE(0))).toEqual([POLICY_PREFIX_FIXED]);
  });

  test('every port of a protocol is one key stopping after the protocol', () => {
    const keys = encodePolicyKeys(pol({ port: 0, endPort: 0, protocol: 132 }));
    expect(keys.map((k) => k.readUInt32LE(0))).toEqual([POLICY_PREFIX_PROTO]);
    expect(keys[0]![13]).toBe(132);
  });

  test.each([[80, 80], [80, 81], [1, 65535], [1000, 2000], [32768, 32768], [0x7fff, 0x8000], [65535, 65535]])(
    'range [%i, %i] is covered exactly by its prefixes', (lo, hi) => {
      const keys = encodePolicyKeys(pol({ port: lo, endPort: hi }));
      const spans = keys.map(portsOf).sort((a, b) => a[0] - b[0]);
      expect(spans[0]![0]).toBe(lo);
      expect(spans.at(-1)![1]).toBe(hi);
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBe(spans[i - 1]![1] + 1);
      expect(keys.length).toBeLessThanOrEqual(30);
    });

  test('rangeToPrefixes of 1-65535 needs 16 prefixes, not 65535 entries', () => {
    expect(rangeToPrefixes(1, 65535)).toHaveLength(16);
  });

  test('decode rebuilds the entry (its range) from any of its keys', () => {
    const e = pol({ port: 1000, endPort: 2000, ruleId: 99, proxyPort: 15001, direction: 'egress' });
    const v = encodePolicyValue(e);
    for (const k of encodePolicyKeys(e)) expect(decodePolicy(k, v)).toEqual(e);
  });

  test.each([
    ['endPort below port', pol({ port: 90, endPort: 80 })],
    ['ports on protocol any', pol({ protocol: 0, port: 80, endPort: 80 })],
    ['ICMP with ports', pol({ protocol: 1, port: 0, endPort: 0 })],
    ['port out of range', pol({ port: 70000, endPort: 70000 })],
    ['endPort without port', pol({ port: 0, endPort: 80 })],
    ['bad direction', pol({ direction: 'sideways' as never })],
  ])('rejects %s', (_name, e) => {
    expect(() => encodePolicyKeys(e)).toThrow(DatapathError);
  });
});

describe('events and counters', () => {
  test('a flow_event record decodes with names, addresses, ports and reason', () => {
    const b = Buffer.alloc(layouts.flow_event.size);
    b.writeBigUInt64LE(5_000_000_000n, 0);
    b.writeUInt32LE(12, 8);
    b.writeUInt32LE(300, 12);
    b.writeUInt32LE(0, 16);
    Buffer.from([10, 0, 0, 1]).copy(b, 20);
    Buffer.from([10, 0, 0, 2]).copy(b, 24);
    b.writeUInt16BE(40000, 28);
    b.writeUInt16BE(80, 30);
    b[32] = 6; b[33] = 0; b[34] = 1; b.writeInt8(-1, 35);
    expect(decodeFlowEvent(b, (ns) => Number(ns / 1_000_000n))).toEqual({
      time: 5000, verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', endpointId: 12,
      srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 40000, dstPort: 80, protocol: 6,
      peerIdentity: 300, ruleId: 0,
    });
  });

  test('counter slots: allowed first, then one per reason, egress after ingress', () => {
    expect(counterIndex('ingress')).toBe(0);
    expect(counterIndex('ingress', 'policy-denied')).toBe(1);
    expect(counterIndex('egress')).toBe(6);
    expect(counterIndex('egress', 'no-endpoint')).toBe(11);
  });
});
