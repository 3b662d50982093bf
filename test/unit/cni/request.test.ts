import { describe, expect, it } from 'vitest';
import { parseCniArgs, podIdentity } from '../../../pkg/cni/args.ts';
import { CniError } from '../../../pkg/cni/errors.ts';
import {
  buildRequest, decodeConfig, defaultPendingDelDir, parseCommand, validateConfig, validateRequest,
} from '../../../pkg/cni/request.ts';

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  return undefined;
}

const conf = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.1.0', name: 'net', type: 'palisade', ...extra });
const env = (extra: Record<string, string> = {}) => ({
  CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin', ...extra,
});

describe('CNI environment', () => {
  it('missing CNI_COMMAND is code 4', () => expect(codeOf(() => parseCommand({}))).toBe(4));
  it('unknown CNI_COMMAND is code 4', () => expect(codeOf(() => parseCommand({ CNI_COMMAND: 'FROB' }))).toBe(4));
  it('missing CNI_CONTAINERID on ADD is code 4', () =>
    expect(codeOf(() => buildRequest(env({ CNI_CONTAINERID: '' }), 'ADD', conf()))).toBe(4));
  it('container id with a slash is code 4', () =>
    expect(codeOf(() => buildRequest(env({ CNI_CONTAINERID: 'a/b' }), 'ADD', conf()))).toBe(4));
  it('interface name longer than 15 bytes is code 4', () =>
    expect(codeOf(() => buildRequest(env({ CNI_IFNAME: 'a'.repeat(16) }), 'ADD', conf()))).toBe(4));
  it('interface name with a colon is code 4', () =>
    expect(codeOf(() => buildRequest(env({ CNI_IFNAME: 'eth0:1' }), 'ADD', conf()))).toBe(4));
  it('missing CNI_NETNS fails ADD but not DEL', () => {
    expect(codeOf(() => buildRequest(env({ CNI_NETNS: '' }), 'ADD', conf()))).toBe(4);
    expect(buildRequest(env({ CNI_NETNS: '' }), 'DEL', conf()).netns).toBe('');
  });
  it('a relative CNI_NETNS is code 4', () =>
    expect(codeOf(() => buildRequest(env({ CNI_NETNS: 'blue' }), 'ADD', conf()))).toBe(4));
  it('STATUS and GC need no container', () => {
    expect(buildRequest({ CNI_COMMAND: 'STATUS' }, 'STATUS', conf()).containerId).toBe('');
  });
});

describe('CNI_ARGS', () => {
  it('reads the pod identity', () => {
    const a = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a;K8S_POD_UID=u1;FOO=bar');
    expect(podIdentity(a)).toEqual({ namespace: 'x', name: 'a', uid: 'u1', infraContainerId: '' });
  });
  it('rejects unknown keys without IgnoreUnknown', () => expect(codeOf(() => parseCniArgs('FOO=bar'))).toBe(4));
  it('rejects a pair without =', () => expect(codeOf(() => parseCniArgs('IgnoreUnknown=1;junk'))).toBe(4));
  it('values may contain =', () => expect(parseCniArgs('K8S_POD_NAME=a=b').K8S_POD_NAME).toBe('a=b'));
});

describe('network config', () => {
  it('non-JSON stdin is code 6', () => expect(codeOf(() => decodeConfig('{nope'))).toBe(6));
  it('a JSON array is code 6', () => expect(codeOf(() => decodeConfig('[]'))).toBe(6));
  it('missing cniVersion is code 7', () => expect(codeOf(() => validateConfig('ADD', { name: 'n' }))).toBe(7));
  it('unsupported cniVersion is code 1', () =>
    expect(codeOf(() => validateConfig('ADD', conf({ cniVersion: '0.2.0' })))).toBe(1));
  it('CHECK with cniVersion 0.3.1 is code 1', () =>
    expect(codeOf(() => validateConfig('CHECK', conf({ cniVersion: '0.3.1' })))).toBe(1));
  it('GC with cniVersion 1.0.0 is code 1', () =>
    expect(codeOf(() => validateConfig('GC', conf({ cniVersion: '1.0.0' })))).toBe(1));
  it('an invalid network name is code 7', () => expect(codeOf(() => validateConfig('ADD', conf({ name: '-x' })))).toBe(7));
  it('an ipam section is code 2', () =>
    expect(codeOf(() => validateConfig('ADD', conf({ ipam: { type: 'host-local' } })))).toBe(2));
  it('an out-of-range mtu is code 7', () => expect(codeOf(() => validateConfig('ADD', conf({ mtu: 20 })))).toBe(7));
  it('a relative agentSocket is code 7', () =>
    expect(codeOf(() => validateConfig('ADD', conf({ agentSocket: 'x.sock' })))).toBe(7));
  it('GC reads cni.dev/attachments when the spec key is absent', () => {
    const c = validateConfig('GC', conf({ 'cni.dev/attachments': [{ containerID: 'a', ifname: 'eth0' }] }));
    expect(c['cni.dev/valid-attachments']).toEqual([{ containerID: 'a', ifname: 'eth0' }]);
  });
  it('malformed valid-attachments is code 7', () =>
    expect(codeOf(() => validateConfig('GC', conf({ 'cni.dev/valid-attachments': [{ id: 1 }] })))).toBe(7));
  it('unknown keys are carried through', () => expect(validateConfig('ADD', conf({ foo: 1 })).foo).toBe(1));
});

describe('agent-side validation', () => {
  it('accepts what the shim builds', () => {
    const req = buildRequest(env({ CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=a' }), 'ADD', conf());
    expect(validateRequest(JSON.parse(JSON.stringify(req)))).toEqual(req);
  });
  it('rejects an unknown command', () => expect(codeOf(() => validateRequest({ command: 'X', config: conf() }))).toBe(4));
  it('the spool lives next to the socket', () =>
    expect(defaultPendingDelDir('/run/palisade/cni.sock')).toBe('/run/palisade/pending-del'));
});
