/**
 * Socket tool for the netns tests, run inside a pod namespace with
 * `ip netns exec NS node sock.ts ...` (Node strips the types). Node modules only
 * (and test/helpers/sockline.ts).
 *
 *   server PORT[,PORT...]        TCP and UDP echo on every port; prints "ready"
 *   probe tcp|udp HOST PORT      one echo round trip within 1 s; exit 0 "ok" / 1 "fail"
 *   session HOST PORT            a TCP connection kept open: each stdin line is sent and
 *                                its echo printed as "echo LINE", or "timeout" after 1 s
 */
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { lineSession } from '../../helpers/sockline.ts';

const [mode, ...args] = process.argv.slice(2);

function server(ports: number[]): void {
  let pending = ports.length * 2;
  const ready = () => { if (--pending === 0) console.log('ready'); };
  for (const port of ports) {
    createServer((s) => s.pipe(s).on('error', () => {})).listen(port, '0.0.0.0', ready);
    const u = createSocket('udp4');
    u.on('message', (m, r) => u.send(m, r.port, r.address));
    u.bind(port, '0.0.0.0', ready);
  }
}

function probe(proto: string, host: string, port: number): void {
  const done = (ok: boolean) => { console.log(ok ? 'ok' : 'fail'); process.exit(ok ? 0 : 1); };
  setTimeout(() => done(false), 1000);
  if (proto === 'udp') {
    const u = createSocket('udp4');
    u.on('message', () => done(true));
    u.send('ping', port, host);
    return;
  }
  const s = connect(port, host, () => s.write('ping'));
  s.on('data', () => done(true));
  s.on('error', () => done(false));
}

if (mode === 'server') server(args[0]!.split(',').map(Number));
else if (mode === 'probe') probe(args[0]!, args[1]!, Number(args[2]));
else if (mode === 'session') lineSession(args[0]!, Number(args[1]), { banner: false });
else { console.error('usage: sock.ts server PORTS | probe tcp|udp HOST PORT | session HOST PORT'); process.exit(2); }
