/** EventHub: one drain of the kernel queue, fanned out to every iterator; close ends them. */
import { describe, expect, test } from 'vitest';
import { EventHub } from '../../../pkg/datapath/linux/events.ts';
import type { FlowEvent } from '../../../pkg/datapath/types.ts';

const ev = (dstPort: number): FlowEvent => ({
  time: 0, verdict: 'dropped', reason: 'policy-denied', direction: 'ingress', endpointId: 1,
  srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 1, dstPort, protocol: 6, peerIdentity: 2, ruleId: 0,
});

describe('EventHub', () => {
  test('every iterator gets every record, in order; close ends them', async () => {
    const queue = [ev(1), ev(2), ev(3)];
    const hub = new EventHub(async () => ({ pop: () => queue.shift() }), 5, () => {});
    const a = hub.subscribe();
    const b = hub.subscribe();
    const ports = async (it: AsyncIterator<FlowEvent>) =>
      [(await it.next()).value.dstPort, (await it.next()).value.dstPort, (await it.next()).value.dstPort];
    expect(await ports(a)).toEqual([1, 2, 3]);
    expect(await ports(b)).toEqual([1, 2, 3]);
    hub.close();
    expect((await a.next()).done).toBe(true);
    expect((await b.next()).done).toBe(true);
  });

  test('a datapath that cannot initialize ends the iterator and reports why', async () => {
    const errors: string[] = [];
    const hub = new EventHub(async () => { throw new Error('no bpffs'); }, 5, (e) => errors.push(e.message));
    expect((await hub.subscribe().next()).done).toBe(true);
    expect(errors).toEqual(['no bpffs']);
  });

  test('a read error is reported and polling goes on', async () => {
    let calls = 0;
    const errors: string[] = [];
    const hub = new EventHub(async () => ({
      pop: () => {
        calls++;
        if (calls === 1) throw new Error('EIO');
        return calls === 2 ? ev(9) : undefined;
      },
    }), 5, (e) => errors.push(e.message));
    const it = hub.subscribe();
    expect((await it.next()).value.dstPort).toBe(9);
    expect(errors).toEqual(['EIO']);
    await it.return?.();
    hub.close();
  });
});
