/**
 * The kubelet loop process of a kept lab (kubelet.ts), started detached by
 * `Lab.startKubelet` in the root namespace:
 *
 *   node kubelet-main.js --lab NAME --dir LABDIR
 *
 * Handshake: it waits (10 s) until the lab's state file names it as `kubeletPid`, so the
 * lab process has written its last state before the loop reads or writes it; then it
 * syncs and writes LABDIR/kubelet.ready. SIGTERM stops it (pods stay as they are: `down`
 * removes them). Logs go to LABDIR/kubelet.log.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './exec.ts';
import { LabKubelet } from './kubelet.ts';
import { KUBELET_READY_FILE, readState } from './lab.ts';

function arg(flag: string): string {
  const i = process.argv.indexOf(flag);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`usage: kubelet-main --lab NAME --dir LABDIR (missing ${flag})`);
  return v;
}

const log = (l: string) => process.stdout.write(`${new Date().toISOString()} ${l}\n`);

async function main(): Promise<void> {
  const lab = arg('--lab');
  const dir = arg('--dir');
  // Root's tools (ip) live in sbin, which the parent's PATH may lack.
  const path = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!path.includes(d)) path.push(d);
  process.env.PATH = path.join(':');
  const deadline = Date.now() + 10_000;
  let state = readState(lab);
  while (state?.kubeletPid !== process.pid) {
    if (Date.now() > deadline) throw new Error(`the state file of lab "${lab}" does not name this process (pid ${process.pid})`);
    await sleep(20);
    state = readState(lab);
  }
  const api = JSON.parse(readFileSync(join(dir, 'api.json'), 'utf8')) as { url: string };
  const k = new LabKubelet({ lab, dir, apiUrl: api.url, nodes: state.nodes, cni: state.cni, pods: state.pods, log });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    k.stop().then(() => process.exit(0), () => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log(`lab "${lab}": ${state.nodes} nodes, ${state.pods.length} pod(s) taken over`);
  await k.run(() => {
    writeFileSync(join(dir, KUBELET_READY_FILE), `${process.pid}\n`);
    log('synced');
  });
}

main().catch((err: Error) => {
  log(`lab kubelet: ${err.message}`);
  process.exit(1);
});
