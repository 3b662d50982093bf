// The endpoint lifecycle against the in-memory pod network and datapath.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NullDatapath } from '../../../pkg/agent/null-datapath.ts';
import { EndpointError } from '../../../pkg/endpoint/errors.ts';
import { EndpointManager, type AddRequest } from '../../../pkg/endpoint/manager.ts';
import { hostIfName } from '../../../pkg/endpoint/names.ts';
import { MemoryPodNetwork } from '../../../pkg/endpoint/podnet-memory.ts';
import { StandaloneRealizer, STANDALONE_POD_IDENTITY } from '../../../pkg/endpoint/standalone-realizer.ts';
import { EndpointStore } from '../../../pkg/endpoint/store.ts';
import type { EndpointRealizer, LocalEndpoint } from '../../../pkg/endpoint/types.ts';
import { Ipam } from '../../../pkg/ipam/ipam.ts';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

async function setup(opts: { cidr?: string; dir?: string; podnet?: MemoryPodNetwork; datapath?: NullDatapath;
  realizer?: (dp: NullDatapath) => EndpointRealizer; realizeTimeoutMs?: number } = {}) {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'palisade-ep-'));
  if (!opts.dir) dirs.push(dir);
  const podnet = opts.podnet ?? new MemoryPodNetwork();
  podnet.namespaces.add('/var/run/netns/p1').add('/var/run/netns/p2');
  const datapath = opts.datapath ?? new NullDatapath();
  const realizer = opts.realizer?.(datapath) ?? new StandaloneRealizer(datapath);
  const ipam = await Ipam.open({ stateDir: dir, cidr: opts.cidr ?? '10.5.0.0/24' });
  const store = new EndpointStore(dir);
  const manager = new EndpointManager({
    ipam, podnet, datapath, realizer, store, defaultMtu: 1400,
    realizeTimeoutMs: opts.realizeTimeoutMs ?? 5000,
    netnsExists: async (p) => podnet.namespaces.has(p),
  });
  return { dir, podnet, datapath, ipam, store, manager };
}

const req = (id: string, netns = '/var/run/netns/p1'): AddRequest => ({
  containerId: id, ifName: 'eth0', netns, network: 'net', cniVersion: '1.1.0',
  pod: { namespace: 'x', name: `pod-${id}`, uid: `uid-${id}` },
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof EndpointError) return err.code;
    throw err;
  }
  return 'resolved';
}

describe('EndpointManager ADD', () => {
  it('sets up a veth, leases an address, attaches and writes the endpoint and ipcache entries', async () => {
    const t = await setup();
    const r = await t.manager.add(req('a'));
    expect(r.state).toBe('ready');
    expect(r.ipv4).toBe('10.5.0.1');
    expect(r.hostIfName).toBe(hostIfName('a', 'eth0'));
    expect(r.hostIfName).toMatch(/^pal[0-9a-f]{11}$/);
    expect(t.podnet.links.get(r.hostIfName)).toMatchObject({ ipv4: '10.5.0.1', mtu: 1400, podIfName: 'eth0' });
    expect(t.datapath.attached.has(r.ifindex)).toBe(true);
    const dump = await t.datapath.dump();
    expect(dump.endpoints).toEqual([{
      ifindex: r.ifindex, endpointId: r.endpointId, identity: STANDALONE_POD_IDENTITY, ipv4: '10.5.0.1',
      ingressEnforced: false, egressEnforced: false,
    }]);
    expect(dump.ipcache).toEqual([{ cidr: '10.5.0.1/32', identity: STANDALONE_POD_IDENTITY }]);
  });

  it('is idempotent for the same container and ifname', async () => {
    const t = await setup();
    const a = await t.manager.add(req('a'));
    const b = await t.manager.add(req('a'));
    expect(b).toEqual(a);
    expect(t.podnet.links.size).toBe(1);
    expect(t.ipam.used).toBe(1);
  });

  it('sets up again when the recorded veth has vanished', async () => {
    const t = await setup();
    const a = await t.manager.add(req('a'));
    t.podnet.links.delete(a.hostIfName);
    const b = await t.manager.add(req('a'));
    expect(t.podnet.links.has(b.hostIfName)).toBe(true);
    expect(t.ipam.used).toBe(1);
  });

  it('twenty concurrent ADDs get distinct addresses and endpoint ids', async () => {
    const t = await setup();
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => t.manager.add(req(`c${i}`))));
    expect(new Set(rs.map((r) => r.ipv4)).size).toBe(20);
    expect(new Set(rs.map((r) => r.endpointId)).size).toBe(20);
  });

  it('a missing netns is PAL_UNKNOWN_CONTAINER and leaves nothing', async () => {
    const t = await setup();
    expect(await codeOf(t.manager.add(req('a', '/var/run/netns/nope')))).toBe('PAL_UNKNOWN_CONTAINER');
    expect(t.ipam.used).toBe(0);
    expect(t.store.list()).toEqual([]);
  });

  it('exhaustion is PAL_IPAM_EXHAUSTED and leaves nothing half-made', async () => {
    const t = await setup({ cidr: '10.5.0.0/30' });
    await t.manager.add(req('a'));
    await t.manager.add(req('b'));
    expect(await codeOf(t.manager.add(req('c')))).toBe('PAL_IPAM_EXHAUSTED');
    expect(t.podnet.links.size).toBe(2);
    expect(t.store.list()).toHaveLength(2);
    expect((await t.datapath.dump()).endpoints).toHaveLength(2);
  });

  it('an interface failure undoes the lease and the record', async () => {
    const t = await setup();
    t.podnet.failNext('setup', 'RTNETLINK answers: Operation not permitted');
    expect(await codeOf(t.manager.add(req('a')))).toBe('PAL_INTERFACE');
    expect(t.ipam.used).toBe(0);
    expect(t.store.list()).toEqual([]);
    expect(t.podnet.links.size).toBe(0);
  });

  it('a lease that cannot be written undoes the veth, the entries and the record', async () => {
    const t = await setup();
    // A non-empty directory where ipam.json goes: the lease's atomic rename fails, after
    // the veth was made (the write runs beside the interface setup).
    mkdirSync(join(t.ipam.file, 'x'), { recursive: true });
    const err = await t.manager.add(req('a')).catch((e: EndpointError) => e);
    expect((err as EndpointError).code).toBe('PAL_INTERNAL');
    expect((err as EndpointError).message).toMatch(/allocating an address/);
    expect(t.podnet.links.size).toBe(0);
    expect(t.ipam.used).toBe(0);
    expect(t.store.list()).toEqual([]);
    expect((await t.datapath.dump()).endpoints).toEqual([]);
    rmSync(t.ipam.file, { recursive: true });
    expect((await t.manager.add(req('a'))).state).toBe('ready');
  });

  it('an attach failure undoes the veth, the lease and the record', async () => {
    const dp = new NullDatapath();
    dp.attach = async () => { throw new Error('tcx: permission denied'); };
    const t = await setup({ datapath: dp });
    const err = await t.manager.add(req('a')).catch((e: EndpointError) => e);
    expect(err).toBeInstanceOf(EndpointError);
    expect((err as EndpointError).code).toBe('PAL_DATAPATH');
    expect((err as EndpointError).details).toMatch(/tcx: permission denied/);
    expect(t.podnet.links.size).toBe(0);
    expect(t.ipam.used).toBe(0);
    expect(t.store.list()).toEqual([]);
  });

  it('a realizer failure undoes everything, including entries it wrote', async () => {
    const t = await setup({
      realizer: (dp) => {
        const inner = new StandaloneRealizer(dp);
        return {
          upsertEndpoint: async (ep: LocalEndpoint) => {
            await inner.upsertEndpoint(ep);
            throw new Error('policy compile failed');
          },
          removeEndpoint: (id: number) => inner.removeEndpoint(id),
        };
      },
    });
    expect(await codeOf(t.manager.add(req('a')))).toBe('PAL_DATAPATH');
    const dump = await t.datapath.dump();
    expect(dump.endpoints).toEqual([]);
    expect(dump.ipcache).toEqual([]);
    expect(t.datapath.attached.size).toBe(0);
    expect(t.podnet.links.size).toBe(0);
    expect(t.ipam.used).toBe(0);
  });

  it('a realizer that never answers times out with PAL_REALIZE_TIMEOUT and nothing stays', async () => {
    const t = await setup({
      realizeTimeoutMs: 50,
      realizer: () => ({ upsertEndpoint: () => new Promise<void>(() => {}), removeEndpoint: async () => {} }),
    });
    expect(await codeOf(t.manager.add(req('a')))).toBe('PAL_REALIZE_TIMEOUT');
    expect(t.podnet.links.size).toBe(0);
    expect(t.ipam.used).toBe(0);
  });

  it('ADD does not return before the realizer resolved', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const t = await setup({ realizer: () => ({ upsertEndpoint: () => gate, removeEndpoint: async () => {} }) });
    let done = false;
    const p = t.manager.add(req('a')).then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false);
    release();
    await p;
    expect(done).toBe(true);
  });
});

describe('EndpointManager DEL, CHECK, GC, restore', () => {
  it('DEL removes the veth, the entries and the lease; a second DEL succeeds', async () => {
    const t = await setup();
    const r = await t.manager.add(req('a'));
    await t.manager.del('a', 'eth0');
    expect(t.podnet.links.size).toBe(0);
    expect(t.ipam.used).toBe(0);
    expect(t.store.list()).toEqual([]);
    const dump = await t.datapath.dump();
    expect(dump.endpoints).toEqual([]);
    expect(dump.ipcache).toEqual([]);
    expect(t.datapath.attached.has(r.ifindex)).toBe(false);
    await t.manager.del('a', 'eth0');
  });

  it('DEL completes when detaching fails after the veth is gone', async () => {
    const dp = new NullDatapath();
    dp.detach = async () => { throw new Error('helper crashed'); };
    const t = await setup({ datapath: dp });
    await t.manager.add(req('a'));
    await t.manager.del('a', 'eth0');
    expect(t.podnet.links.size).toBe(0);
    expect(t.ipam.used).toBe(0);
    expect(t.store.list()).toEqual([]);
  });

  it('DEL fails (and keeps the lease) when the veth cannot be deleted; a retry completes it', async () => {
    const t = await setup();
    await t.manager.add(req('a'));
    t.podnet.failNext('teardown', 'RTNETLINK answers: Device or resource busy');
    expect(await codeOf(t.manager.del('a', 'eth0'))).toBe('PAL_INTERFACE');
    expect(t.ipam.used).toBe(1);
    await t.manager.del('a', 'eth0');
    expect(t.ipam.used).toBe(0);
    expect(t.podnet.links.size).toBe(0);
  });

  it('DEL of something never added succeeds', async () => {
    const t = await setup();
    await t.manager.del('never', 'eth0');
  });

  it('CHECK passes on a healthy endpoint and names what is missing otherwise', async () => {
    const t = await setup();
    const r = await t.manager.add(req('a'));
    await t.manager.check('a', 'eth0', r.netns, [r.ipv4]);
    expect(await codeOf(t.manager.check('a', 'eth0', r.netns, ['10.5.0.99']))).toBe('PAL_CHECK_FAILED');
    t.podnet.links.delete(r.hostIfName);
    const err = await t.manager.check('a', 'eth0', r.netns, [r.ipv4]).catch((e: EndpointError) => e);
    expect((err as EndpointError).message).toMatch(/host veth .* is missing/);
    expect(await codeOf(t.manager.check('zzz', 'eth0', r.netns, []))).toBe('PAL_UNKNOWN_CONTAINER');
  });

  it('GC removes attachments of this network that are not valid, and only those', async () => {
    const t = await setup();
    await t.manager.add(req('keep'));
    await t.manager.add(req('stale'));
    await t.manager.add({ ...req('other'), network: 'othernet' });
    const removed = await t.manager.gc('net', [{ containerID: 'keep', ifname: 'eth0' }]);
    expect(removed).toContain('stale/eth0');
    expect(t.manager.list().map((r) => r.containerId).sort()).toEqual(['keep', 'other']);
    expect(t.ipam.leases().map((l) => l.containerId).sort()).toEqual(['keep', 'other']);
  });

  it('GC releases leases and deletes veths that no record explains', async () => {
    const t = await setup();
    await t.ipam.allocate({ containerId: 'leaked', ifName: 'eth0', network: 'net' });
    t.podnet.links.set('pal00000000000', { ...req('x'), hostIfName: 'pal00000000000', hostMac: '', podIfName: 'eth0',
      podMac: '', mtu: 1500, ipv4: '1.1.1.1', gateway: '', ifindex: 99 });
    await t.manager.gc('net', []);
    expect(t.ipam.used).toBe(0);
    expect(t.podnet.links.size).toBe(0);
  });

  it('restart restores endpoints, re-attaches and re-registers them', async () => {
    const t = await setup();
    const a = await t.manager.add(req('a'));
    const b = await t.manager.add(req('b', '/var/run/netns/p2'));
    // A new agent process: fresh datapath handle (pinned maps would keep entries), same kernel links.
    const dp2 = new NullDatapath();
    await dp2.apply({ upsert: await t.datapath.dump(), delete: { endpoints: [], ipcache: [], policy: [], cidrs: [] } });
    const t2 = await setup({ dir: t.dir, podnet: t.podnet, datapath: dp2 });
    const report = await t2.manager.restore();
    expect(report.restored).toBe(2);
    expect(t2.manager.list().map((r) => r.ipv4).sort()).toEqual([a.ipv4, b.ipv4].sort());
    expect([...dp2.attached].sort()).toEqual([a.ifindex, b.ifindex].sort());
    const c = await t2.manager.add(req('c'));
    expect([a.ipv4, b.ipv4]).not.toContain(c.ipv4);
    expect([a.endpointId, b.endpointId]).not.toContain(c.endpointId);
  });

  it('restart drops endpoints whose veth disappeared and their stale datapath entries', async () => {
    const t = await setup();
    const a = await t.manager.add(req('a'));
    await t.manager.add(req('b', '/var/run/netns/p2'));
    t.podnet.links.delete(a.hostIfName);
    const dp2 = new NullDatapath();
    await dp2.apply({ upsert: await t.datapath.dump(), delete: { endpoints: [], ipcache: [], policy: [], cidrs: [] } });
    const t2 = await setup({ dir: t.dir, podnet: t.podnet, datapath: dp2 });
    const report = await t2.manager.restore();
    expect(report.removed).toEqual(['a/eth0']);
    expect(t2.ipam.get('a', 'eth0')).toBeUndefined();
    const dump = await dp2.dump();
    expect(dump.endpoints.map((e) => e.ipv4)).toEqual(['10.5.0.2']);
    expect(dump.ipcache.map((e) => e.cidr)).toEqual(['10.5.0.2/32']);
  });

  it('restart undoes an ADD a crash interrupted', async () => {
    const t = await setup();
    // Simulate a crash after the record and the veth, before `ready`.
    await t.ipam.allocate({ containerId: 'half', ifName: 'eth0', network: 'net' });
    const name = hostIfName('half', 'eth0');
    await t.store.save({
      state: 'creating', containerId: 'half', ifName: 'eth0', network: 'net', netns: '/var/run/netns/p1',
      cniVersion: '1.1.0', podNamespace: '', podName: '', podUid: '', endpointId: 1, ipv4: '10.5.0.1',
      gateway: '169.254.1.1', hostIfName: name, hostMac: '', podMac: '', mtu: 1500, ifindex: 0, createdAt: '',
    });
    await t.podnet.setup({ hostIfName: name, hostMac: '', podIfName: 'eth0', podMac: '', netns: '/var/run/netns/p1',
      mtu: 1500, ipv4: '10.5.0.1', gateway: '' });
    const t2 = await setup({ dir: t.dir, podnet: t.podnet });
    const report = await t2.manager.restore();
    expect(report.removed).toEqual(['half/eth0']);
    expect(t.podnet.links.size).toBe(0);
    expect(t2.ipam.used).toBe(0);
  });
});
