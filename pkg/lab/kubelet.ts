/**
 * The kubelet of a kept lab: one process per lab (kubelet-main.js), started when `up` or
 * `run --keep` hands the lab over, stopped by `down` (destroyLab), pid recorded in the
 * state file as `kubeletPid`.
 *
 * It lists and watches Pods through the lab API server and, for each pod that is not
 * hostNetwork and is bound to a lab node (or unbound: it then binds it round-robin by
 * setting spec.nodeName, as a scheduler would), does what the scenario runner does for
 * its pods, with the same code (lab.ts): adds the finalizer `palisade.dev/lab-kubelet`,
 * creates the pod's netns, starts the probe server for its TCP/UDP container ports,
 * runs the real CNI ADD, and reports podIP(s), Running and Ready through the status
 * subresource. When the pod is being deleted (deletionTimestamp, since the finalizer
 * holds it) or is gone (a namespace cascade), it runs CNI DEL, stops the pod's
 * processes, removes the netns, and then removes its finalizer so the object goes: like
 * graceful deletion, `kubectl delete pod` returns once the pod's network is gone.
 *
 * Ownership: the loop only runs once the runner is done (`Lab.startKubelet`), and takes
 * over the runner's pods from the state file, so no pod is ever wired twice. From then on
 * the loop is the only writer of the state file's `pods`, each recorded before anything
 * is made for it, so `down` (CNI DEL per recorded pod, then the lab's namespaces) and a
 * restarted loop find everything. On (re)start the loop adopts recorded pods: a complete
 * one whose object still exists is kept (its probe server restarted if it died); a
 * half-wired one, or one whose object is gone or was replaced, is torn down (and wired
 * anew if its object wants it).
 *
 * Errors on one pod are logged and retried after `retryMs`; they never stop the loop.
 */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { invokeCni } from './cni.ts';
import { sleep } from './exec.ts';
import { KubeClient, type Json, type KubeRef } from './kube.ts';
import {
  cniCall, podServerAlive, readState, runningPodStatus, startPodServer, teardownPod, waitPodServer,
  type CniMode, type PodState,
} from './lab.ts';
import { containerPorts } from './runner.ts';
import { addNetns, nodeInfo, podNetns, type NodeInfo } from './topology.ts';

/** Held by every pod the loop wired, so deletion waits for CNI DEL. */
export const KUBELET_FINALIZER = 'palisade.dev/lab-kubelet';

export interface KubeletOptions {
  lab: string;
  dir: string;
  apiUrl: string;
  nodes: number;
  cni: CniMode;
  /** Pods recorded in the state file (the runner's, or an earlier run's of the loop). */
  pods: readonly PodState[];
  log: (line: string) => void;
  /** Delay before a failed pod is reconciled again (default 3000 ms). */
  retryMs?: number;
}

function keyOf(obj: Json): string {
  const md = (obj.metadata ?? {}) as Json;
  return `${String(md.namespace ?? '')}/${String(md.name ?? '')}`;
}

function podRef(key: string): KubeRef {
  const [namespace, name] = key.split('/') as [string, string];
  return { apiVersion: 'v1', kind: 'Pod', namespace, name };
}

/** The runtime's container id of a pod: stable per pod UID, so a restart finds it again. */
export function containerIdOf(uid: string): string {
  const hex = uid.replace(/[^0-9a-f]/gi, '').toLowerCase();
  return `lab${hex || randomBytes(16).toString('hex')}`;
}

export class LabKubelet {
  readonly kube: KubeClient;
  private readonly o: KubeletOptions;
  private readonly nodes: NodeInfo[];
  /** Pods the loop answers for (ip '' = being wired, or half-wired by an earlier run). */
  private readonly pods = new Map<string, PodState>();
  /** The latest Pod objects, by key, from list + watch. */
  private readonly cache = new Map<string, Json>();
  private readonly queued = new Set<string>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly abort = new AbortController();
  private nextNode = 0;
  private stopped = false;

  constructor(o: KubeletOptions) {
    this.o = o;
    this.kube = new KubeClient(o.apiUrl);
    this.nodes = Array.from({ length: o.nodes }, (_, i) => nodeInfo(o.lab, i));
    for (const p of o.pods) this.pods.set(`${p.namespace}/${p.name}`, { ...p });
  }

  /**
   * Lists, reconciles every pod (calls `onSynced` once that first pass is done), then
   * watches; relists whenever the watch ends or fails. Returns after `stop()`.
   */
  async run(onSynced: () => void): Promise<void> {
    let synced = false;
    while (!this.stopped) {
      try {
        const list = await this.kube.list('v1', 'Pod');
        this.cache.clear();
        for (const it of (list.items ?? []) as Json[]) this.cache.set(keyOf(it), it);
        for (const k of new Set([...this.cache.keys(), ...this.pods.keys()])) this.enqueue(k);
        if (!synced) {
          await Promise.all([...this.chains.values()]);
          synced = true;
          onSynced();
        }
        const rv = String(((list.metadata ?? {}) as Json).resourceVersion ?? '0');
        await this.kube.watch('v1', 'Pod', rv, (type, obj) => {
          if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
          const k = keyOf(obj);
          if (type === 'DELETED') this.cache.delete(k);
          else this.cache.set(k, obj);
          this.enqueue(k);
        }, this.abort.signal);
      } catch (err) {
        if (this.stopped) break;
        this.o.log(`pods: ${(err as Error).message}; listing again in 1 s`);
        await sleep(1000);
      }
    }
  }

  /** Stops watching and waits (bounded) for pods being wired or torn down. */
  async stop(timeoutMs = 4000): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const t of this.timers) clearTimeout(t);
    await Promise.race([Promise.all([...this.chains.values()]), sleep(timeoutMs)]);
  }

  /** Reconciles `key` after whatever runs for it now; coalesces repeated requests. */
  private enqueue(key: string): void {
    if (this.stopped || this.queued.has(key)) return;
    this.queued.add(key);
    const next = (this.chains.get(key) ?? Promise.resolve()).then(async () => {
      this.queued.delete(key);
      if (this.stopped) return;
      try {
        await this.reconcile(key);
      } catch (err) {
        if (this.stopped) return;
        const ms = this.o.retryMs ?? 3000;
        this.o.log(`pod ${key}: ${(err as Error).message}; retrying in ${ms} ms`);
        const t = setTimeout(() => { this.timers.delete(t); this.enqueue(key); }, ms);
        this.timers.add(t);
      }
    });
    this.chains.set(key, next);
    void next.finally(() => { if (this.chains.get(key) === next) this.chains.delete(key); });
  }

  private async reconcile(key: string): Promise<void> {
    const obj = this.cache.get(key);
    const md = (obj?.metadata ?? {}) as Json;
    const uid = String(md.uid ?? '');
    const deleting = md.deletionTimestamp !== undefined && md.deletionTimestamp !== null;
    const cur = this.pods.get(key);
    if (cur && (!obj || cur.uid !== uid || deleting || cur.ip === '')) await this.teardown(key, cur);
    if (!obj) return;
    if (deleting) {
      await this.releaseFinalizer(key, obj);
      return;
    }
    if (!this.wants(obj)) return;
    const have = this.pods.get(key);
    if (have) await this.ensureRunning(key, obj, have);
    else await this.wire(key, obj);
  }

  /** Not hostNetwork, and bound to a lab node or not bound at all. */
  private wants(obj: Json): boolean {
    const spec = (obj.spec ?? {}) as Json;
    if (spec.hostNetwork === true) return false;
    const node = spec.nodeName;
    return typeof node !== 'string' || node === '' || this.nodes.some((n) => n.name === node);
  }

  private finalizersOf(obj: Json): string[] {
    const f = ((obj.metadata ?? {}) as Json).finalizers;
    return Array.isArray(f) ? f.map(String) : [];
  }

  /** Binds the pod (when unbound) and adds the finalizer, in one write. Returns the node. */
  private async bind(key: string, obj: Json): Promise<NodeInfo> {
    const spec = (obj.spec ?? {}) as Json;
    let name = typeof spec.nodeName === 'string' ? spec.nodeName : '';
    const patch: Json = {};
    if (!name) {
      name = this.nodes[this.nextNode++ % this.nodes.length]!.name;
      patch.spec = { nodeName: name };
    }
    const fin = this.finalizersOf(obj);
    if (!fin.includes(KUBELET_FINALIZER)) patch.metadata = { finalizers: [...fin, KUBELET_FINALIZER] };
    if (Object.keys(patch).length > 0) await this.kube.patch(podRef(key), patch);
    return this.nodes.find((n) => n.name === name)!;
  }

  private async releaseFinalizer(key: string, obj: Json): Promise<void> {
    const fin = this.finalizersOf(obj);
    if (!fin.includes(KUBELET_FINALIZER)) return;
    try {
      await this.kube.patch(podRef(key), { metadata: { finalizers: fin.filter((f) => f !== KUBELET_FINALIZER) } });
    } catch (err) {
      // Gone meanwhile (forced, or its namespace went): nothing holds it any more.
      if ((err as { status?: number }).status !== 404) throw err;
    }
  }

  /** Wires a pod as the runner does (lab.ts helpers); undoes everything on failure. */
  private async wire(key: string, obj: Json): Promise<void> {
    const node = await this.bind(key, obj);
    const md = (obj.metadata ?? {}) as Json;
    const uid = String(md.uid ?? '');
    const [namespace, name] = key.split('/') as [string, string];
    const p: PodState = {
      namespace, name,
      labels: { ...((md.labels ?? {}) as Record<string, string>) },
      ports: containerPorts(obj).filter((x) => x.protocol === 'TCP' || x.protocol === 'UDP'),
      node: node.index,
      netns: podNetns(this.o.lab, namespace, name),
      containerId: containerIdOf(uid),
      uid, ip: '', serverPid: 0,
    };
    // Recorded before anything is made, so `down` or a restarted loop finds it.
    this.pods.set(key, p);
    this.save();
    try {
      // A netns of that name without a record: an earlier pod's whose teardown failed.
      if (existsSync(`/var/run/netns/${p.netns}`)) await teardownPod(this.o.lab, this.o.cni, p, 10_000).catch(() => undefined);
      await addNetns(p.netns);
      p.serverPid = startPodServer(this.o.lab, p);
      this.save();
      const res = await invokeCni(cniCall(this.o.lab, this.o.cni, 'ADD', p));
      await waitPodServer(this.o.lab, p);
      await this.reportRunning(key, obj, node, res.ip!);
      p.ip = res.ip!;
      this.save();
      this.o.log(`pod ${key}: ${p.ip} on ${node.name}`);
    } catch (err) {
      await teardownPod(this.o.lab, this.o.cni, p, 10_000).catch(() => undefined);
      this.pods.delete(key);
      this.save();
      throw new Error(`wiring: ${(err as Error).message}`, { cause: err });
    }
  }

  private async reportRunning(key: string, obj: Json, node: NodeInfo, ip: string): Promise<void> {
    const containers = (((obj.spec ?? {}) as Json).containers ?? []) as Json[];
    const names = containers.map((c) => String(c.name ?? 'main'));
    const image = String(containers[0]?.image ?? 'palisade-lab/podserver');
    await this.kube.patch(podRef(key), { status: runningPodStatus(node, ip, names, image) }, 'status');
  }

  /** An adopted or already wired pod: finalizer, probe server and status as they should be. */
  private async ensureRunning(key: string, obj: Json, p: PodState): Promise<void> {
    if (!existsSync(`/var/run/netns/${p.netns}`)) {
      // Its network went from under it: wire it anew.
      await this.teardown(key, p);
      await this.wire(key, obj);
      return;
    }
    if (!this.finalizersOf(obj).includes(KUBELET_FINALIZER)) {
      await this.kube.patch(podRef(key), { metadata: { finalizers: [...this.finalizersOf(obj), KUBELET_FINALIZER] } });
    }
    let changed = false;
    if (!podServerAlive(this.o.lab, p)) {
      p.serverPid = startPodServer(this.o.lab, p);
      await waitPodServer(this.o.lab, p);
      this.o.log(`pod ${key}: probe server restarted`);
      changed = true;
    }
    const labels = { ...((((obj.metadata ?? {}) as Json).labels ?? {}) as Record<string, string>) };
    if (JSON.stringify(labels) !== JSON.stringify(p.labels)) {
      p.labels = labels;
      changed = true;
    }
    if (changed) this.save();
    const st = (obj.status ?? {}) as Json;
    if (st.podIP !== p.ip || st.phase !== 'Running') await this.reportRunning(key, obj, this.nodes[p.node]!, p.ip);
  }

  private async teardown(key: string, p: PodState): Promise<void> {
    await teardownPod(this.o.lab, this.o.cni, p, 30_000);
    this.pods.delete(key);
    this.save();
    this.o.log(`pod ${key}: removed`);
  }

  /** Writes the pods into the state file (atomically; other fields kept). */
  private save(): void {
    const state = readState(this.o.lab);
    if (!state) return;
    state.pods = [...this.pods.values()];
    const file = join(this.o.dir, 'state.json');
    writeFileSync(`${file}.kubelet.tmp`, JSON.stringify(state));
    renameSync(`${file}.kubelet.tmp`, file);
  }
}
