/**
 * A datapath that only remembers entries in memory and attaches nothing: for tests of
 * the CNI path on machines (or at moments) without the eBPF datapath (`--datapath none`).
 * It enforces nothing.
 */
import { entryKey } from '../datapath/diff.ts';
import {
  emptyState, type Datapath, type DatapathChange, type DatapathCounters, type DatapathState, type FlowEvent,
} from '../datapath/types.ts';

type Kind = keyof DatapathState;
const kinds: Kind[] = ['endpoints', 'ipcache', 'policy', 'cidrs'];

export class NullDatapath implements Datapath {
  private readonly state = new Map<Kind, Map<string, object>>(kinds.map((k) => [k, new Map()]));
  readonly attached = new Set<number>();

  async init(): Promise<void> {}

  async apply(change: DatapathChange): Promise<void> {
    for (const k of kinds) {
      const key = entryKey[k] as (e: object) => string;
      for (const e of change.upsert[k] as object[]) this.state.get(k)!.set(key(e), { ...e });
      for (const e of change.delete[k] as object[]) this.state.get(k)!.delete(key(e));
    }
  }

  async dump(): Promise<DatapathState> {
    const out = emptyState();
    for (const k of kinds) (out[k] as object[]) = [...this.state.get(k)!.values()].map((e) => ({ ...e }));
    return out;
  }

  async attach(ifindex: number): Promise<void> {
    this.attached.add(ifindex);
  }

  async detach(ifindex: number): Promise<void> {
    this.attached.delete(ifindex);
  }

  async *events(): AsyncIterable<FlowEvent> {}

  async counters(): Promise<DatapathCounters> {
    return { allowed: { ingress: 0, egress: 0 }, dropped: { ingress: {}, egress: {} } };
  }

  async close(): Promise<void> {}
}
