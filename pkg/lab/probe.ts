/**
 * Probes as shared/SCENARIOS.md defines them, run from inside the source pod's network
 * namespace (by that pod's server process):
 *
 * - TCP: a connection to (ip, port) completes within 1 s.
 * - UDP: a datagram sent to (ip, port) is echoed back within 1 s.
 * - HTTP: the request is sent over a TCP connection (connect within 1 s) and the status
 *   code of the answer is the result (`false` when no connection completed).
 *
 * Each probe is tried at most twice; a cell is connected if any try succeeded.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';

export const PROBE_TIMEOUT_MS = 1000;
/** An HTTP answer may come through the L7 proxy: give it longer than the connect. */
export const HTTP_ANSWER_TIMEOUT_MS = 3000;

export interface HttpRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface ProbeRequest {
  to: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  http?: HttpRequest;
}

export type ProbeValue = boolean | number;

export function tcpConnect(ip: string, port: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export function udpEcho(ip: string, port: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const payload = randomBytes(12);
    let finished = false;
    const done = (ok: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      try { sock.close(); } catch { /* closed already */ }
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('message', (msg) => { if (msg.equals(payload)) done(true); });
    // A connected UDP socket reports ICMP port-unreachable as ECONNREFUSED.
    sock.on('error', () => done(false));
    sock.connect(port, ip, () => {
      if (finished) return;
      try {
        sock.send(payload, (err) => { if (err) done(false); });
      } catch {
        done(false);
      }
    });
  });
}

/** Sends one HTTP/1.1 request; resolves the status code, or false with no connection. */
export function httpRequest(ip: string, port: number, req: HttpRequest): Promise<ProbeValue> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port });
    let buf = '';
    let connected = false;
    let finished = false;
    const done = (v: ProbeValue) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    let timer = setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    sock.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      // Connected but no answer in time: the connection completed, so the cell is not
      // "no connection"; 0 marks "connected, no HTTP answer".
      timer = setTimeout(() => done(0), HTTP_ANSWER_TIMEOUT_MS);
      const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      sock.write(`${req.method} ${req.path} HTTP/1.1\r\nHost: ${ip}:${port}\r\n${headers}Connection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      if (m) done(Number(m[1]));
      else if (buf.length > 64 || buf.includes('\r\n')) done(0);
    });
    sock.once('error', () => done(connected ? 0 : false));
    sock.once('close', () => done(connected ? 0 : false));
  });
}

async function once(p: ProbeRequest): Promise<ProbeValue> {
  if (p.http) return httpRequest(p.to, p.port, p.http);
  return p.protocol === 'TCP' ? tcpConnect(p.to, p.port) : udpEcho(p.to, p.port);
}

/** One probe with its single retry. */
export async function probe(p: ProbeRequest): Promise<ProbeValue> {
  const first = await once(p);
  if (first !== false) return first;
  return once(p);
}
