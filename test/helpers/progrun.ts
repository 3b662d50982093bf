/**
 * The setup shared by the tests that run the real from_pod/to_pod programs under
 * BPF_PROG_TEST_RUN: freshly built objects, a private bpffs with a LinuxDatapath on it,
 * a veth pair whose first end plays the pod's interface (skb->ifindex is set through
 * ctx_in, so the endpoint lookup is the real one), and a scratch directory for frames.
 * `useProgRun` registers the beforeAll/afterAll hooks of the calling describe block;
 * hooks the caller registers after it run once the rig is up. Everything is named with
 * a unique prefix and removed in afterAll, also when a test fails.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { LinuxDatapath } from '../../pkg/datapath/linux/datapath.ts';
import { MemoryDatapath } from '../../pkg/datapath/memory/datapath.ts';
import type { DatapathChange } from '../../pkg/datapath/types.ts';
import { uniquePrefix } from './privileged.ts';
import { bpffsDir, buildBpf, dropBpffs, helper, ifindexOf, sh, shQuiet } from '../system/datapath/env.ts';
import { frame, modelPacket, type FrameSpec } from '../system/datapath/packets.ts';

/** The tc return codes the programs answer with. */
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

export interface ProgRun {
  /** The unique prefix of every kernel object of the rig. */
  readonly prefix: string;
  /** The datapath on the rig's bpffs (from beforeAll on). */
  readonly dp: LinuxDatapath;
  /** The in-memory model, fed every change given to `apply`. */
  readonly model: MemoryDatapath;
  /** The ifindex that plays the pod's interface. */
  readonly ifPod: number;
  /** The other end of the veth: an interface without endpoint. */
  readonly ifOther: number;
  /** Applies a change to the kernel's maps and to the model. */
  apply(c: DatapathChange): Promise<void>;
  /** Runs the frame through from_pod (egress) or to_pod (ingress); the program's return. */
  run(spec: FrameSpec): number;
  /** Runs raw frame bytes through from_pod (egress) or to_pod (ingress): the program's
   * return and the frame as the program left it. */
  runBytes(bytes: Buffer, direction: 'egress' | 'ingress', ifindex: number): { retval: number; out: Buffer };
  /** `run` as a verdict: 0 'allowed', 2 'dropped'; any other return throws. */
  verdict(spec: FrameSpec): 'allowed' | 'dropped';
  /** The kernel's verdict (ifindex defaults to ifPod), expected equal to the model's. */
  judge(spec: Omit<FrameSpec, 'ifindex'> & { ifindex?: number }): string;
}

/** Sets up the rig for the calling describe block (see the file comment). */
export function useProgRun(tag: string, opts: { reload?: boolean } = {}): ProgRun {
  const prefix = uniquePrefix(tag);
  const vethA = `${prefix}a`;
  const vethB = `${prefix}b`;
  const model = new MemoryDatapath();
  let root = '';
  let tmp = '';
  let dp: LinuxDatapath | undefined;
  let ifPod = 0;
  let ifOther = 0;

  beforeAll(async () => {
    buildBpf();
    tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
    root = bpffsDir(prefix);
    sh('ip', ['link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB]);
    ifPod = ifindexOf(vethA);
    ifOther = ifindexOf(vethB);
    dp = new LinuxDatapath({ bpffsRoot: root, ...(opts.reload ? { reload: true } : {}) });
    await dp.init();
  });

  afterAll(async () => {
    await dp?.close();
    shQuiet('ip', ['link', 'del', vethA]);
    if (root) dropBpffs(root);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const rig: ProgRun = {
    prefix,
    get dp() {
      if (!dp) throw new Error('progrun: the datapath is not up (used before beforeAll?)');
      return dp;
    },
    model,
    get ifPod() { return ifPod; },
    get ifOther() { return ifOther; },
    async apply(c) {
      await rig.dp.apply(c);
      await model.apply(c);
    },
    run(spec) {
      const file = join(tmp, 'frame.bin');
      writeFileSync(file, frame(spec));
      const prog = join(root, 'palisade', 'progs', spec.direction === 'egress' ? 'from_pod' : 'to_pod');
      const out = execFileSync(helper, ['test-run', prog, file, String(spec.ifindex), '1']).toString();
      return Number(out.split(' ')[0]);
    },
    runBytes(bytes, direction, ifindex) {
      const file = join(tmp, 'frame.bin');
      const outFile = join(tmp, 'frame.out');
      writeFileSync(file, bytes);
      const prog = join(root, 'palisade', 'progs', direction === 'egress' ? 'from_pod' : 'to_pod');
      const out = execFileSync(helper, ['test-run', prog, file, String(ifindex), '1', outFile]).toString();
      return { retval: Number(out.split(' ')[0]), out: readFileSync(outFile) };
    },
    verdict(spec) {
      const retval = rig.run(spec);
      if (retval === TC_ACT_OK) return 'allowed';
      if (retval === TC_ACT_SHOT) return 'dropped';
      throw new Error(`unexpected program return ${retval}`);
    },
    judge(spec) {
      const s = { ifindex: ifPod, ...spec };
      const k = rig.verdict(s);
      expect(k, `kernel and model disagree on ${JSON.stringify(spec)}`).toBe(model.verdict(modelPacket(s)).verdict);
      return k;
    },
  };
  return rig;
}
