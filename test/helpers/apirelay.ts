/**
 * Reaching a test's in-process API server from inside a network namespace, where an
 * agent under test lives and the host's loopback is not reachable: a unix socket in the
 * test's directory relays to the server's loopback port, and socat inside the namespace
 * listens on 127.0.0.1:PORT and forwards to that socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';

export interface ApiRelay {
  /** Stops socat and the relay; safe to call once whatever state setup reached. */
  close(): Promise<void>;
}

/**
 * Serves 127.0.0.1:`apiPort` (the API server) at 127.0.0.1:`port` inside the network
 * namespace named `netns`, through a unix socket at `sock`.
 */
export async function relayIntoNetns(apiPort: number, netns: string, sock: string, port: number): Promise<ApiRelay> {
  const relay: Server = createServer((c) => {
    const up = connect(apiPort, '127.0.0.1');
    c.pipe(up).pipe(c);
    up.on('error', () => c.destroy());
    c.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => relay.listen(sock, r));
  const socat: ChildProcess = spawn('nsenter', [`--net=/var/run/netns/${netns}`, 'socat',
    `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${sock}`], { stdio: 'ignore' });
  return {
    async close() {
      socat.kill('SIGKILL');
      await new Promise<void>((r) => relay.close(() => r()));
    },
  };
}
