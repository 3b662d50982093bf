// --config FILE (the chart's agent.json): keys are the long flag names, flags win, bad
// files and unknown keys are UsageErrors naming the problem; the health and CNI-config
// options' validation. Also the CLI's exit code for an unknown key.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAgentArgs, UsageError } from '../../../pkg/agent/options.ts';

const dir = mkdtempSync(join(tmpdir(), 'palisade-agent-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function cfg(content: unknown): string {
  const f = join(dir, `c${n++}.json`);
  writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
  return f;
}

describe('palisade-agent --config', () => {
  it('takes options from the file', () => {
    const f = cfg({
      'api-socket': '/run/p/a.sock', 'bpffs-root': '/run/bpf', 'cni-conf-dir': '/etc/cni/net.d',
      'health-bind-address': '0.0.0.0', 'health-port': 9999, 'log-level': 'warn', mtu: 1400,
      'remove-cni-conf-on-shutdown': true, 'state-dir': '/var/lib/p', standalone: true, 'pod-cidr': '10.2.0.0/24',
    });
    expect(parseAgentArgs(['--config', f, '--node-name', 'n'])).toMatchObject({
      mode: 'standalone', nodeName: 'n', podCidr: '10.2.0.0/24', apiSocket: '/run/p/a.sock',
      pendingDelDir: '/run/p/pending-del', bpffsRoot: '/run/bpf', cniConfDir: '/etc/cni/net.d',
      healthBindAddress: '0.0.0.0', healthPort: 9999, logLevel: 'warn', mtu: 1400,
      removeCniConfOnShutdown: true, stateDir: '/var/lib/p',
    });
  });
  it('command-line flags override the file, wherever --config is', () => {
    const f = cfg({ 'log-level': 'warn', mtu: 1400, 'health-port': 1111 });
    expect(parseAgentArgs(['--log-level', 'error', '--config', f, '--node-name', 'n', '--mtu', '9000']))
      .toMatchObject({ logLevel: 'error', mtu: 9000, healthPort: 1111 });
  });
  for (const [name, content, msg] of [
    ['an unknown key', { 'log-level': 'info', 'helth-port': 1 }, /unknown key 'helth-port'/],
    ['a nested config', { config: '/x' }, /unknown key 'config'/],
    ['a non-boolean switch', { 'remove-cni-conf-on-shutdown': 'yes' }, /'remove-cni-conf-on-shutdown' must be true or false/],
    ['an object value', { mtu: { v: 1 } }, /'mtu' must be a string or a number/],
    ['not an object', '[1, 2]', /not a JSON object/],
    ['invalid JSON', '{"mtu": ', /--config .*c\d+\.json/],
    ['a bad value from the file', { mtu: 5 }, /--mtu must be/],
  ] as const) {
    it(`rejects ${name}`, () => {
      const f = cfg(content);
      expect(() => parseAgentArgs(['--config', f, '--node-name', 'n'])).toThrow(UsageError);
      expect(() => parseAgentArgs(['--config', f, '--node-name', 'n'])).toThrow(msg);
    });
  }
  it('rejects a missing file, naming it', () => {
    expect(() => parseAgentArgs(['--config', join(dir, 'nope.json'), '--node-name', 'n'])).toThrow(/nope\.json/);
  });
});

describe('health and CNI config options', () => {
  const base = ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24'];
  it('parses them', () => {
    expect(parseAgentArgs([...base, '--health-port', '0', '--health-bind-address', '::1',
      '--cni-conf-dir', '/tmp/cni', '--remove-cni-conf-on-shutdown'])).toMatchObject({
      healthPort: 0, healthBindAddress: '::1', cniConfDir: '/tmp/cni', removeCniConfOnShutdown: true,
    });
  });
  for (const [name, argv, msg] of [
    ['a bad health port', ['--health-port', '70000'], /--health-port/],
    ['a non-IP bind address', ['--health-bind-address', 'localhost'], /--health-bind-address/],
    ['a relative CNI conf dir', ['--cni-conf-dir', 'net.d'], /--cni-conf-dir must be an absolute path/],
    ['removal without a dir', ['--remove-cni-conf-on-shutdown'], /needs --cni-conf-dir/],
  ] as const) {
    it(`rejects ${name}`, () => {
      expect(() => parseAgentArgs([...base, ...argv])).toThrow(msg);
    });
  }
});

describe('the palisade-agent command', () => {
  it('exits 2 naming an unknown config key', () => {
    const f = cfg({ 'no-such-option': 1 });
    const cmd = new URL('../../../cmd/palisade-agent.ts', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [cmd, '--config', f, '--node-name', 'n'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown key 'no-such-option'");
  });
});
