/**
 * The lab's API server process (started detached by the lab, in the root namespace, so
 * that a kept lab outlives the CLI that built it):
 *
 *   node apiserver-main.js --dir LABDIR [--node-server URL] [--crd FILE ...]
 *
 * Listens on 127.0.0.1:<free port> (for kubectl and the lab) and on LABDIR/api.sock (a
 * unix socket relayed to the same server, which the forwarder in the lab's host
 * namespace exposes to the nodes). Writes LABDIR/kubeconfig, LABDIR/kubeconfig-node
 * (server = the --node-server URL, as the nodes reach it), and then LABDIR/api.json
 * `{url, pid}` as the readiness signal. SIGTERM closes it.
 */
import { connect, createServer } from 'node:net';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApiServer } from '../apiserver/index.ts';


async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let dir = '';
  let nodeServer = '';
  const crdFiles: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dir') dir = argv[++i] ?? '';
    else if (argv[i] === '--crd') crdFiles.push(argv[++i] ?? '');
    else if (argv[i] === '--node-server') nodeServer = argv[++i] ?? '';
  }
  if (!dir) throw new Error('usage: apiserver-main --dir LABDIR [--crd FILE ...]');
  const api = await startApiServer({ host: '127.0.0.1', port: 0, crdFiles, endpointSliceController: true });
  await api.writeKubeconfig(join(dir, 'kubeconfig'));
  if (nodeServer) await api.writeKubeconfig(join(dir, 'kubeconfig-node'), { server: nodeServer });
  const { hostname, port } = new URL(api.url);
  const sock = join(dir, 'api.sock');
  rmSync(sock, { force: true });
  const relay = createServer((c) => {
    const up = connect(Number(port), hostname);
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(sock, () => resolve()));
  const tmp = join(dir, 'api.json.tmp');
  writeFileSync(tmp, JSON.stringify({ url: api.url, pid: process.pid }));
  renameSync(tmp, join(dir, 'api.json'));
  const stop = async () => {
    relay.close();
    await api.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((err: Error) => {
  console.error(`lab apiserver: ${err.message}`);
  process.exit(1);
});
