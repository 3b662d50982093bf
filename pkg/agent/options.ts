/**
 * palisade-agent's command line, validated once into AgentOptions.
 */
import { parseArgs } from 'node:util';
import { parseCidr } from '../ipam/cidr.ts';

export interface AgentOptions {
  mode: 'standalone' | 'kubernetes';
  nodeName: string;
  /** Standalone: from --pod-cidr. Kubernetes: from the Node's spec.podCIDR (may be overridden). */
  podCidr?: string;
  kubeconfig?: string;
  stateDir: string;
  apiSocket: string;
  pendingDelDir: string;
  bpffsRoot: string;
  /** `linux` (default) enforces; `none` records entries in memory only (tests before the datapath landed). */
  datapath: 'linux' | 'memory' | 'none';
  mtu?: number;
  realizeTimeoutMs: number;
  logLevel: 'info' | 'warn' | 'error';
}

export const USAGE = `usage:
  palisade-agent --standalone --node-name N --pod-cidr CIDR [options]
  palisade-agent --kubeconfig K --node-name N [options]
options:
  --state-dir D          persisted IPAM and endpoint state (default /var/lib/palisade)
  --api-socket S         agent API socket (default /var/run/palisade/cni.sock)
  --pending-del-dir D    DELs the shim recorded while the agent was down
                         (default: pending-del/ next to the socket)
  --bpffs-root R         bpffs mount holding the pinned programs and maps (default /sys/fs/bpf)
  --mtu N                pod MTU (default: the default-route device's MTU, else 1500)
  --realize-timeout-ms N how long CNI ADD waits for the endpoint's policy (default 60000)
  --datapath linux|memory|none
                         linux (default) loads and enforces; memory and none are for tests
  --log-level info|warn|error`;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function int(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer in ${min}..${max}`);
  return n;
}

export function parseAgentArgs(argv: string[]): AgentOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        standalone: { type: 'boolean' },
        kubeconfig: { type: 'string' },
        'node-name': { type: 'string' },
        'pod-cidr': { type: 'string' },
        'state-dir': { type: 'string' },
        'api-socket': { type: 'string' },
        'pending-del-dir': { type: 'string' },
        'bpffs-root': { type: 'string' },
        datapath: { type: 'string' },
        mtu: { type: 'string' },
        'realize-timeout-ms': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) throw new UsageError('help');
  const mode = values.standalone ? 'standalone' : 'kubernetes';
  if (values.standalone && values.kubeconfig) throw new UsageError('--standalone and --kubeconfig exclude each other');
  if (!values.standalone && !values.kubeconfig) throw new UsageError('one of --standalone or --kubeconfig is required');
  const nodeName = values['node-name'];
  if (!nodeName) throw new UsageError('--node-name is required');
  if (mode === 'standalone' && !values['pod-cidr']) throw new UsageError('--pod-cidr is required with --standalone');
  if (values['pod-cidr']) {
    try {
      parseCidr(values['pod-cidr']);
    } catch (err) {
      throw new UsageError(`--pod-cidr: ${(err as Error).message}`);
    }
  }
  const datapath = values.datapath ?? 'linux';
  if (datapath !== 'linux' && datapath !== 'memory' && datapath !== 'none') {
    throw new UsageError('--datapath must be linux, memory or none');
  }
  const logLevel = values['log-level'] ?? 'info';
  if (logLevel !== 'info' && logLevel !== 'warn' && logLevel !== 'error') {
    throw new UsageError('--log-level must be info, warn or error');
  }
  const apiSocket = values['api-socket'] ?? '/var/run/palisade/cni.sock';
  for (const [k, v] of [['--state-dir', values['state-dir']], ['--api-socket', apiSocket],
    ['--pending-del-dir', values['pending-del-dir']], ['--bpffs-root', values['bpffs-root']]] as const) {
    if (v !== undefined && !v.startsWith('/')) throw new UsageError(`${k} must be an absolute path`);
  }
  return {
    mode,
    nodeName,
    podCidr: values['pod-cidr'],
    kubeconfig: values.kubeconfig,
    stateDir: values['state-dir'] ?? '/var/lib/palisade',
    apiSocket,
    pendingDelDir: values['pending-del-dir'] ?? `${apiSocket.slice(0, apiSocket.lastIndexOf('/'))}/pending-del`,
    bpffsRoot: values['bpffs-root'] ?? '/sys/fs/bpf',
    datapath,
    mtu: int(values.mtu, '--mtu', 68, 65535),
    realizeTimeoutMs: int(values['realize-timeout-ms'], '--realize-timeout-ms', 1, 3_600_000) ?? 60_000,
    logLevel,
  };
}
