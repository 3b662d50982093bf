// The palisade-agent process (standalone, `--datapath none`) in a private network
// namespace made by unshare(1), so its sysctl writes and health port touch nothing
// shared: the conflist appears once it serves, the TCP health listener answers, and
// SIGTERM / SIGINT remove the conflist and exit 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describePrivileged } from '../../helpers/privileged.ts';

const CMD = new URL('../../../cmd/palisade-agent.ts', import.meta.url).pathname;
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function waitFor(cond: () => boolean, what: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describePrivileged('palisade-agent shutdown', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`removes the conflist on ${sig} and exits 0`, async () => {
      const d = mkdtempSync(join(tmpdir(), 'palisade-agent-sig-'));
      dirs.push(d);
      const conf = join(d, 'net.d', '10-palisade.conflist');
      const child = spawn('unshare', ['--net', process.execPath, CMD, '--standalone', '--node-name', 'n1',
        '--pod-cidr', '10.77.0.0/28', '--state-dir', join(d, 'state'), '--api-socket', join(d, 'run/a.sock'),
        '--datapath', 'none', '--cni-conf-dir', join(d, 'net.d'), '--remove-cni-conf-on-shutdown'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let log = '';
      child.stderr!.on('data', (c: Buffer) => { log += c.toString(); });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await waitFor(() => existsSync(conf) || child.exitCode !== null, 'the conflist', () => log);
      expect(JSON.parse(readFileSync(conf, 'utf8')).plugins[0].agentSocket).toBe(join(d, 'run/a.sock'));
      expect(log).toContain('"health":"127.0.0.1:9876"');
      child.kill(sig);
      expect(await exited).toBe(0);
      expect(existsSync(conf)).toBe(false);
    });
  }
});
