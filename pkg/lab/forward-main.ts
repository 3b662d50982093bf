/**
 * A TCP -> unix socket forwarder, run by the lab inside its host namespace so that node
 * namespaces reach the lab API server (which listens on loopback in the root namespace,
 * plus a unix socket in the lab directory):
 *
 *   node forward-main.js --listen ADDR:PORT --to SOCK
 */
import { connect, createServer } from 'node:net';

function arg(flag: string): string {
  const i = process.argv.indexOf(flag);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) {
    console.error(`forward: missing ${flag}`);
    process.exit(2);
  }
  return v;
}

const [host, port] = arg('--listen').split(':');
const to = arg('--to');
const srv = createServer((client) => {
  const upstream = connect(to);
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
srv.listen(Number(port), host);
process.on('SIGTERM', () => process.exit(0));
