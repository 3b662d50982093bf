/**
 * The lab's API server process (started detached by the lab, in the root namespace, so
 * that a kept lab outlives the CLI that built it):
 *
 *   node apiserver-main.js --dir LABDIR [--node-server URL] [--crd FILE ...]
 *                          [--agent-socket NODE:PORT=PATH ...]
 *
 * Listens on 127.0.0.1:<free port> (for kubectl and the lab) and on LABDIR/api.sock (a
 * unix socket relayed to the same server, which the forwarder in the lab's host
 * namespace exposes to the nodes). Writes LABDIR/kubeconfig, LABDIR/kubeconfig-node
 * (server = the --node-server URL, as the nodes reach it), and then LABDIR/api.json
 * `{url, pid}` as the readiness signal. SIGTERM closes it.
 *
 * `--agent-socket`: the pods/proxy and nodes/proxy subresources reach port PORT of node
 * NODE through the unix socket PATH (the lab's agents serve their API on unix sockets in
 * node network namespaces this process cannot route to); other targets get plain TCP.
 */
import { connect, createServer } from 'node:net';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApiServer, tcpDialer, type ProxyDialer } from '../apiserver/index.ts';


async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let dir = '';
  let nodeServer = '';
  const crdFiles: string[] = [];
  const agentSockets = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dir') dir = argv[++i] ?? '';
    else if (argv[i] === '--crd') crdFiles.push(argv[++i] ?? '');
    else if (argv[i] === '--node-server') nodeServer = argv[++i] ?? '';
    else if (argv[i] === '--agent-socket') {
      const m = /^([^:=]+):(\d+)=(.+)$/.exec(argv[++i] ?? '');
      if (!m) throw new Error('--agent-socket wants NODE:PORT=PATH');
      agentSockets.set(`${m[1]}:${m[2]}`, m[3]!);
    }
  }
  if (!dir) throw new Error('usage: apiserver-main --dir LABDIR [--crd FILE ...]');
  const dial: ProxyDialer = (t) => {
    const path = t.node === undefined ? undefined : agentSockets.get(`${t.node}:${t.port}`);
    if (path === undefined) return tcpDialer(t);
    return new Promise((resolve, reject) => {
      const c = connect(path);
      c.once('connect', () => {
        c.removeAllListeners('error');
        resolve(c);
      });
      c.once('error', reject);
    });
  };
  const api = await startApiServer({ host: '127.0.0.1', port: 0, crdFiles, endpointSliceController: true, dial });
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
