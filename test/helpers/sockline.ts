/**
 * The "session" mode of the socket tools that the netns tests run inside pod namespaces
 * (test/system/datapath/sock.ts, test/system/service/svcsock.ts). Node modules only: the
 * tools run as `node TOOL.ts` with the types stripped.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

/**
 * Keeps a TCP connection to host:port open: each stdin line is sent, and each line that
 * comes back is printed as "echo LINE", or "timeout" when none comes within 1 s. With
 * `banner`, the server speaks first: its first line is printed as JSON {banner, remote};
 * otherwise "connected" is printed once connected. Prints "error MSG" on a socket error
 * and "closed" (then exits) when the connection closes.
 */
export function lineSession(host: string, port: number, opts: { banner: boolean }): void {
  const s = connect(port, host, () => { if (!opts.banner) console.log('connected'); });
  let waiting: NodeJS.Timeout | undefined;
  let buf = '';
  let first = opts.banner;
  s.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (first) {
        first = false;
        console.log(JSON.stringify({ banner: line, remote: `${s.remoteAddress}:${s.remotePort}` }));
        continue;
      }
      clearTimeout(waiting);
      console.log(`echo ${line}`);
    }
  });
  s.on('error', (e) => console.log(`error ${e.message}`));
  s.on('close', () => { console.log('closed'); process.exit(0); });
  createInterface({ input: process.stdin }).on('line', (line) => {
    s.write(`${line}\n`);
    clearTimeout(waiting);
    waiting = setTimeout(() => console.log('timeout'), 1000);
  }).on('close', () => s.end());
}
