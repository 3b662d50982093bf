/**
 * Socket tool for the Service netns tests, run inside a pod namespace with
 * `ip netns exec NS node svcsock.ts ...` (Node strips the types). Node modules only
 * (and test/helpers/sockline.ts).
 *
 *   server NAME PORT[,PORT...]   TCP and UDP on every port; prints "ready". TCP: sends
 *                                "NAME LOCALPORT PEERIP" on accept, then echoes lines.
 *                                UDP: answers every datagram with "NAME LOCALPORT PEERIP",
 *                                padded with '.' to the datagram's size when it is larger.
 *   probe tcp|udp HOST PORT [LOCALPORT [SIZE]]   (LOCALPORT 0 = any; SIZE: UDP payload bytes)
 *                                one exchange within 1 s; prints JSON
 *                                {ok, banner, remote} or {ok: false, error}
 *   session HOST PORT            a TCP connection kept open: prints {banner, remote} as
 *                                JSON, then "echo LINE" per stdin line, or "timeout"
 */
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { lineSession } from '../../helpers/sockline.ts';

const [mode, ...args] = process.argv.slice(2);

function server(name: string, ports: number[]): void {
  let pending = ports.length * 2;
  const ready = () => { if (--pending === 0) console.log('ready'); };
  for (const port of ports) {
    createServer((s) => {
      s.on('error', () => {});
      s.write(`${name} ${port} ${s.remoteAddress}\n`);
      s.pipe(s);
    }).listen(port, '0.0.0.0', ready);
    const u = createSocket('udp4');
    u.on('message', (m, r) => {
      const text = `${name} ${port} ${r.address}\n`;
      u.send(m.length > text.length ? text.padEnd(m.length, '.') : text, r.port, r.address);
    });
    u.bind(port, '0.0.0.0', ready);
  }
}

function out(v: object): never {
  console.log(JSON.stringify(v));
  process.exit(0);
}

function probe(proto: string, host: string, port: number, localPort?: number, size = 4): void {
  setTimeout(() => out({ ok: false, error: 'timeout' }), 1000);
  if (proto === 'udp') {
    // Connected: an ICMP error about it surfaces as ECONNREFUSED.
    const u = createSocket('udp4');
    u.on('error', (e: NodeJS.ErrnoException) => out({ ok: false, error: e.code }));
    u.on('message', (m, r) => out({ ok: true, banner: m.toString().split('\n')[0], bytes: m.length, remote: `${r.address}:${r.port}` }));
    const go = () => u.connect(port, host, () => u.send(Buffer.alloc(size, 'p')));
    if (localPort) u.bind(localPort, go);
    else go();
    return;
  }
  const s = connect({ port, host, ...(localPort ? { localPort } : {}) });
  s.on('error', (e: NodeJS.ErrnoException) => out({ ok: false, error: e.code }));
  s.once('data', (d) => out({ ok: true, banner: d.toString().trim(), remote: `${s.remoteAddress}:${s.remotePort}` }));
}

if (mode === 'server') server(args[0]!, args[1]!.split(',').map(Number));
else if (mode === 'probe') probe(args[0]!, args[1]!, Number(args[2]), Number(args[3] ?? 0) || undefined, Number(args[4] ?? 4));
else if (mode === 'session') lineSession(args[0]!, Number(args[1]), { banner: true });
else {
  console.error('usage: svcsock.ts server NAME PORTS | probe tcp|udp HOST PORT | session HOST PORT');
  process.exit(2);
}
