/**
 * An in-memory PodNetwork: keeps the links it "created" in a map, hands out ifindexes
 * like the kernel (increasing, never reused at once). For unprivileged tests of the
 * endpoint lifecycle; `failNext` makes the next call of a method fail.
 */
import {
  PodNetworkError, type PodLinkInfo, type PodLinkSpec, type PodNetwork, type PodSetupOptions,
} from './podnet.ts';

export class MemoryPodNetwork implements PodNetwork {
  readonly links = new Map<string, PodLinkSpec & { ifindex: number }>();
  /** Namespaces that exist; setup fails for others. */
  readonly namespaces = new Set<string>();
  private nextIndex = 10;
  private readonly failures = new Map<keyof PodNetwork, string>();
  readonly calls: string[] = [];

  failNext(method: keyof PodNetwork, message = 'injected failure'): void {
    this.failures.set(method, message);
  }

  private maybeFail(method: keyof PodNetwork): void {
    const m = this.failures.get(method);
    if (m !== undefined) {
      this.failures.delete(method);
      throw new PodNetworkError(m);
    }
  }

  async setup(spec: PodLinkSpec, opts: PodSetupOptions = {}): Promise<PodLinkInfo> {
    this.calls.push(`setup ${spec.hostIfName}`);
    this.maybeFail('setup');
    if (!this.namespaces.has(spec.netns)) throw new PodNetworkError(`netns ${spec.netns} does not exist`);
    if (this.links.has(spec.hostIfName)) throw new PodNetworkError(`creating veth ${spec.hostIfName}: File exists`);
    const ifindex = this.nextIndex++;
    this.links.set(spec.hostIfName, { ...spec, ifindex });
    try {
      await opts.onHostLink?.(ifindex);
    } catch (err) {
      this.links.delete(spec.hostIfName);
      throw err;
    }
    return { hostIfindex: ifindex };
  }

  async teardown(hostIfName: string): Promise<void> {
    this.calls.push(`teardown ${hostIfName}`);
    this.maybeFail('teardown');
    this.links.delete(hostIfName);
  }

  async hostLink(hostIfName: string): Promise<{ ifindex: number } | undefined> {
    this.maybeFail('hostLink');
    const l = this.links.get(hostIfName);
    return l && { ifindex: l.ifindex };
  }

  async check(spec: PodLinkSpec): Promise<string[]> {
    this.maybeFail('check');
    const l = this.links.get(spec.hostIfName);
    if (!l) return [`host veth ${spec.hostIfName} is missing`];
    const out: string[] = [];
    if (l.ipv4 !== spec.ipv4) out.push(`address ${spec.ipv4}/32 is missing on ${spec.podIfName}`);
    if (!this.namespaces.has(l.netns)) out.push(`network namespace ${spec.netns} is gone`);
    return out;
  }

  async listHostLinks(prefix: string): Promise<string[]> {
    return [...this.links.keys()].filter((n) => n.startsWith(prefix));
  }
}
