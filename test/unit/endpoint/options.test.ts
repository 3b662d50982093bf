import { describe, expect, it } from 'vitest';
import { parseAgentArgs, UsageError } from '../../../pkg/agent/options.ts';

describe('palisade-agent options', () => {
  it('standalone with defaults', () => {
    expect(parseAgentArgs(['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24'])).toMatchObject({
      mode: 'standalone', nodeName: 'n', podCidr: '10.1.0.0/24', stateDir: '/var/lib/palisade',
      apiSocket: '/var/run/palisade/cni.sock', pendingDelDir: '/var/run/palisade/pending-del',
      bpffsRoot: '/sys/fs/bpf', datapath: 'linux', attach: 'clsact', realizeTimeoutMs: 60000, logLevel: 'info',
    });
  });
  it('--attach tcx and --log-level debug', () => {
    expect(parseAgentArgs(['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24', '--attach', 'tcx',
      '--log-level', 'debug'])).toMatchObject({ attach: 'tcx', logLevel: 'debug' });
  });
  it('--cni-socket is --api-socket', () => {
    expect(parseAgentArgs(['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24',
      '--cni-socket', '/tmp/y/c.sock'])).toMatchObject({ apiSocket: '/tmp/y/c.sock', pendingDelDir: '/tmp/y/pending-del' });
    expect(() => parseAgentArgs(['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24',
      '--cni-socket', '/tmp/y/c.sock', '--api-socket', '/tmp/z.sock'])).toThrow(/name the same socket/);
  });
  it('the pending-DEL spool follows the socket', () => {
    expect(parseAgentArgs(['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24',
      '--api-socket', '/tmp/x/a.sock']).pendingDelDir).toBe('/tmp/x/pending-del');
  });
  it('kubernetes mode needs no pod CIDR', () => {
    expect(parseAgentArgs(['--kubeconfig', '/k', '--node-name', 'n'])).toMatchObject({ mode: 'kubernetes', kubeconfig: '/k' });
  });
  it('neither --standalone nor --kubeconfig is kubernetes mode with in-cluster credentials', () => {
    const o = parseAgentArgs(['--node-name', 'n']);
    expect(o).toMatchObject({ mode: 'kubernetes', healthPort: 9876, healthBindAddress: '127.0.0.1',
      removeCniConfOnShutdown: false });
    expect(o.kubeconfig).toBeUndefined();
    expect(o.cniConfDir).toBeUndefined();
  });
  for (const [name, argv, msg] of [
    ['both modes', ['--standalone', '--kubeconfig', '/k', '--node-name', 'n'], /exclude each other/],
    ['no node name', ['--standalone', '--pod-cidr', '10.1.0.0/24'], /--node-name is required/],
    ['standalone without CIDR', ['--standalone', '--node-name', 'n'], /--pod-cidr is required/],
    ['a bad CIDR', ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.1/24'], /host bits/],
    ['a relative state dir', ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24', '--state-dir', 'x'], /absolute/],
    ['an unknown flag', ['--standalone', '--frob'], /frob/],
    ['a bad datapath', ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24', '--datapath', 'x'], /--datapath/],
    ['a bad attach mode', ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24', '--attach', 'xdp'], /--attach must be tcx or clsact/],
    ['a bad log level', ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24', '--log-level', 'trace'], /--log-level/],
    ['a bad mtu', ['--standalone', '--node-name', 'n', '--pod-cidr', '10.1.0.0/24', '--mtu', '9'], /--mtu/],
  ] as const) {
    it(`rejects ${name}`, () => {
      expect(() => parseAgentArgs([...argv])).toThrow(UsageError);
      expect(() => parseAgentArgs([...argv])).toThrow(msg);
    });
  }
});
