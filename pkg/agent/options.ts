/**
 * palisade-agent's command line, validated once into AgentOptions. `--config FILE` reads
 * a JSON object keyed by the long flag names (the Helm chart's agent.json); a flag given
 * on the command line overrides the file's key. Unknown keys are a UsageError naming the key.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { parseCidr } from '../ipam/cidr.ts';

export interface AgentOptions {
  mode: 'standalone' | 'kubernetes';
  nodeName: string;
  /** Standalone: from --pod-cidr. Kubernetes: from the Node's spec.podCIDR (may be overridden). */
  podCidr?: string;
  /** Kubernetes mode without it: the in-cluster service account. */
  kubeconfig?: string;
  stateDir: string;
  apiSocket: string;
  pendingDelDir: string;
  bpffsRoot: string;
  /** `linux` (default) enforces; `none` records entries in memory only (tests before the datapath landed). */
  datapath: 'linux' | 'memory' | 'none';
  /**
   * How the linux datapath attaches to pod veths: clsact (default) or tcx (clsact where
   * the kernel has none). tcx costs every ADD and DEL RCU grace periods under the RTNL
   * lock, ~30 ms measured; see docs/cni.md.
   */
  attach?: 'tcx' | 'clsact';
  mtu?: number;
  realizeTimeoutMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** TCP port of the /healthz, /readyz, /metrics listener; 0 = one the kernel picks. */
  healthPort: number;
  healthBindAddress: string;
  /** Where the agent writes 10-palisade.conflist once it serves ADDs; unset = never. */
  cniConfDir?: string;
  removeCniConfOnShutdown: boolean;
  /**
   * Kubernetes mode, linux datapath: port of the L7 HTTP proxy on 127.0.0.1 that
   * PalisadeNetworkPolicy `http` rules redirect to; 0 = no proxy (http rules fail closed).
   */
  l7ProxyPort: number;
}

/** The chart's defaults (charts/palisade values healthPort, healthBindAddress). */
export const DEFAULT_HEALTH_PORT = 9876;
export const DEFAULT_HEALTH_BIND_ADDRESS = '127.0.0.1';
/** The chart's default (charts/palisade value l7ProxyPort). */
export const DEFAULT_L7_PROXY_PORT = 15001;

export const USAGE = `usage:
  palisade-agent --standalone --node-name N --pod-cidr CIDR [options]
  palisade-agent --kubeconfig K --node-name N [options]
  palisade-agent --node-name N [options]     (in-cluster service account)
options:
  --config FILE          JSON object keyed by these long flag names; flags override it
  --state-dir D          persisted IPAM and endpoint state (default /var/lib/palisade)
  --api-socket S         agent API socket (default /var/run/palisade/cni.sock);
                         --cni-socket S is the same option
  --pending-del-dir D    DELs the shim recorded while the agent was down
                         (default: pending-del/ next to the socket)
  --bpffs-root R         bpffs mount holding the pinned programs and maps (default /sys/fs/bpf)
  --mtu N                pod MTU (default: the default-route device's MTU, else 1500)
  --realize-timeout-ms N how long CNI ADD waits for the endpoint's policy (default 60000)
  --datapath linux|memory|none
                         linux (default) loads and enforces; memory and none are for tests
  --attach clsact|tcx    how programs attach to pod veths (default clsact; see docs/cni.md)
  --log-level debug|info|warn|error
  --health-port N        TCP port for /healthz, /readyz, /metrics (default 9876)
  --health-bind-address A
                         address of that listener (default 127.0.0.1)
  --cni-conf-dir D       write D/10-palisade.conflist once CNI ADDs can be served
  --remove-cni-conf-on-shutdown
                         remove that file on SIGTERM/SIGINT
  --l7-proxy-port N      L7 HTTP proxy port on 127.0.0.1 (default 15001; 0 = no proxy,
                         PalisadeNetworkPolicy http rules then fail closed)`;

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

const OPTIONS = {
  config: { type: 'string' },
  standalone: { type: 'boolean' },
  kubeconfig: { type: 'string' },
  'node-name': { type: 'string' },
  'pod-cidr': { type: 'string' },
  'state-dir': { type: 'string' },
  'api-socket': { type: 'string' },
  'cni-socket': { type: 'string' },
  'pending-del-dir': { type: 'string' },
  'bpffs-root': { type: 'string' },
  datapath: { type: 'string' },
  attach: { type: 'string' },
  mtu: { type: 'string' },
  'realize-timeout-ms': { type: 'string' },
  'log-level': { type: 'string' },
  'health-port': { type: 'string' },
  'health-bind-address': { type: 'string' },
  'cni-conf-dir': { type: 'string' },
  'remove-cni-conf-on-shutdown': { type: 'boolean' },
  'l7-proxy-port': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = Partial<Record<keyof typeof OPTIONS, string | boolean>>;

/**
 * The config file's keys as option values. Strings and numbers are accepted for valued
 * options (JSON has `"mtu": 1400`), booleans only for switches; `config` and `help`
 * cannot be set from the file.
 */
export function readAgentConfig(file: string): Values {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--config ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UsageError(`--config ${file}: not a JSON object`);
  }
  const out: Values = {};
  for (const [key, v] of Object.entries(raw)) {
    if (!Object.hasOwn(OPTIONS, key) || key === 'config' || key === 'help') {
      throw new UsageError(`--config ${file}: unknown key '${key}'`);
    }
    const k = key as keyof typeof OPTIONS;
    if (OPTIONS[k].type === 'boolean') {
      if (typeof v !== 'boolean') throw new UsageError(`--config ${file}: '${key}' must be true or false`);
      out[k] = v;
    } else {
      if (typeof v !== 'string' && typeof v !== 'number') {
        throw new UsageError(`--config ${file}: '${key}' must be a string or a number`);
      }
      out[k] = String(v);
    }
  }
  return out;
}

export function parseAgentArgs(argv: string[]): AgentOptions {
  let cli: Values;
  try {
    ({ values: cli } = parseArgs({ args: argv, strict: true, options: OPTIONS }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (cli.help) throw new UsageError('help');
  const fromFile = typeof cli.config === 'string' ? readAgentConfig(cli.config) : {};
  const merged = { ...fromFile, ...cli };
  const str = (k: keyof typeof OPTIONS): string | undefined => merged[k] as string | undefined;
  const values = {
    standalone: merged.standalone === true,
    kubeconfig: str('kubeconfig'),
    'node-name': str('node-name'),
    'pod-cidr': str('pod-cidr'),
    'state-dir': str('state-dir'),
    'api-socket': str('api-socket'),
    'cni-socket': str('cni-socket'),
    'pending-del-dir': str('pending-del-dir'),
    'bpffs-root': str('bpffs-root'),
    datapath: str('datapath'),
    attach: str('attach'),
    mtu: str('mtu'),
    'realize-timeout-ms': str('realize-timeout-ms'),
    'log-level': str('log-level'),
    'health-port': str('health-port'),
    'health-bind-address': str('health-bind-address'),
    'cni-conf-dir': str('cni-conf-dir'),
    'remove-cni-conf-on-shutdown': merged['remove-cni-conf-on-shutdown'] === true,
    'l7-proxy-port': str('l7-proxy-port'),
  };
  const mode = values.standalone ? 'standalone' : 'kubernetes';
  if (values.standalone && values.kubeconfig) throw new UsageError('--standalone and --kubeconfig exclude each other');
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
  const attach = values.attach ?? 'clsact';
  if (attach !== 'tcx' && attach !== 'clsact') throw new UsageError('--attach must be tcx or clsact');
  const logLevel = values['log-level'] ?? 'info';
  if (logLevel !== 'debug' && logLevel !== 'info' && logLevel !== 'warn' && logLevel !== 'error') {
    throw new UsageError('--log-level must be debug, info, warn or error');
  }
  // --cni-socket: the name the CNI issue gives the option (the socket the shim talks to).
  if (values['api-socket'] && values['cni-socket'] && values['api-socket'] !== values['cni-socket']) {
    throw new UsageError('--api-socket and --cni-socket name the same socket; give one');
  }
  const apiSocket = values['api-socket'] ?? values['cni-socket'] ?? '/var/run/palisade/cni.sock';
  for (const [k, v] of [['--state-dir', values['state-dir']], ['--api-socket', apiSocket],
    ['--pending-del-dir', values['pending-del-dir']], ['--bpffs-root', values['bpffs-root']],
    ['--cni-conf-dir', values['cni-conf-dir']]] as const) {
    if (v !== undefined && !v.startsWith('/')) throw new UsageError(`${k} must be an absolute path`);
  }
  const healthBindAddress = values['health-bind-address'] ?? DEFAULT_HEALTH_BIND_ADDRESS;
  if (!isIP(healthBindAddress)) throw new UsageError('--health-bind-address must be an IP address');
  if (values['remove-cni-conf-on-shutdown'] && !values['cni-conf-dir']) {
    throw new UsageError('--remove-cni-conf-on-shutdown needs --cni-conf-dir');
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
    attach,
    mtu: int(values.mtu, '--mtu', 68, 65535),
    realizeTimeoutMs: int(values['realize-timeout-ms'], '--realize-timeout-ms', 1, 3_600_000) ?? 60_000,
    logLevel,
    healthPort: int(values['health-port'], '--health-port', 0, 65535) ?? DEFAULT_HEALTH_PORT,
    healthBindAddress,
    cniConfDir: values['cni-conf-dir'],
    removeCniConfOnShutdown: values['remove-cni-conf-on-shutdown'],
    l7ProxyPort: int(values['l7-proxy-port'], '--l7-proxy-port', 0, 65535) ?? DEFAULT_L7_PROXY_PORT,
  };
}
