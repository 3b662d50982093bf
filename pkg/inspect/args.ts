/**
 * The `kubectl palisade` command line: subcommands, their flags, and the global flags
 * (accepted anywhere). Pure; a mistake is a UsageError (exit status 1).
 */
import type { FlowVerdict } from '../flow/types.ts';
import { parseIpv4 } from '../policy/ip.ts';
import type { TraceProtocol } from './analysis.ts';
import { DEFAULT_AGENT_NAMESPACE } from './agents.ts';

export const USAGE = `kubectl palisade: inspect Palisade (eBPF NetworkPolicy) in a cluster

usage:
  kubectl palisade status                      every node's agent: health, version, revision, endpoints, drops in the last minute
  kubectl palisade endpoints [-n NS | -A]      endpoints (pods with a Palisade interface) and their enforcement
  kubectl palisade policy NS/POD               effective ingress and egress rules of a pod, each with its policy
  kubectl palisade trace NS/SRC NS/DST --port P [--protocol TCP|UDP|SCTP]
                                               the verdict and the policy (or default deny) that decides it
  kubectl palisade observe [--verdict V] [--pod NS/POD] [--since D] [--limit N] [--follow]
                                               recent flows from every agent, merged by time

global flags:
  --kubeconfig FILE        kubeconfig (default: $KUBECONFIG, ~/.kube/config)
  --context NAME           kubeconfig context
  -o, --output table|json  output format (default table; observe --follow -o json prints one JSON record a line)
  --agent-namespace NS     namespace of the agent pods (default ${DEFAULT_AGENT_NAMESPACE})
  --request-timeout D      per request (default 30s)
  -h, --help               this help

Exit status: 0 done, 1 usage error or not found, 2 cannot reach the cluster or an agent.
trace and policy compute with the agents' compiler from the API's objects; status,
endpoints and observe ask every agent through the API server (pods/proxy).`;

export class UsageError extends Error {
  readonly code = 'PAL_INSPECT_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Output = 'table' | 'json';

export interface GlobalOptions {
  kubeconfig?: string;
  context?: string;
  output: Output;
  agentNamespace: string;
  requestTimeoutMs: number;
}

export type Command =
  | { name: 'help' }
  | { name: 'status' }
  | { name: 'endpoints'; namespace?: string; allNamespaces: boolean }
  | { name: 'policy'; pod: string }
  | { name: 'trace'; src: string; dst: string; port: number; protocol: TraceProtocol }
  | { name: 'observe'; verdict?: FlowVerdict; pod?: string; sinceMs?: number; limit?: number; follow: boolean };

export interface Invocation {
  global: GlobalOptions;
  command: Command;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a duration like `30s`, `5m`, `1h30m`, `250ms` (Go's form) into milliseconds. */
export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (text === '' || matched !== text.length) {
    throw new UsageError(`invalid duration "${text}": use e.g. 30s, 5m, 1h30m`);
  }
  return Math.round(total);
}

const POD_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;

/** Checks `namespace/name`; `what` names the argument in the error. */
export function parsePodRef(text: string, what: string): string {
  if (!POD_RE.test(text)) throw new UsageError(`${what} must be NAMESPACE/POD, got "${text}"`);
  return text;
}

const VERDICTS: readonly FlowVerdict[] = ['allowed', 'dropped', 'redirected', 'denied'];
const PROTOCOLS: readonly TraceProtocol[] = ['TCP', 'UDP', 'SCTP'];

// Flags that take a value, by subcommand ('' = global).
const VALUE_FLAGS: Record<string, readonly string[]> = {
  '': ['--kubeconfig', '--context', '-o', '--output', '--agent-namespace', '--request-timeout'],
  endpoints: ['-n', '--namespace'],
  trace: ['--port', '--protocol'],
  observe: ['--verdict', '--pod', '--since', '--limit'],
};
const BOOL_FLAGS: Record<string, readonly string[]> = {
  '': ['-h', '--help'],
  endpoints: ['-A', '--all-namespaces'],
  observe: ['--follow', '-f'],
};

function int(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${flag} must be an integer in ${min}..${max}, got "${text}"`);
  return n;
}

/** Parses argv (without the program name). */
export function parseArgs(argv: readonly string[]): Invocation {
  const global: GlobalOptions = { output: 'table', agentNamespace: DEFAULT_AGENT_NAMESPACE, requestTimeoutMs: 30_000 };
  const flags = new Map<string, string>();
  const bools = new Set<string>();
  const positional: string[] = [];
  let sub: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let inline: string | undefined;
    if (arg.startsWith('--') && arg.includes('=')) {
      inline = arg.slice(arg.indexOf('=') + 1);
      arg = arg.slice(0, arg.indexOf('='));
    } else if (/^-[on]./.test(arg)) {
      // kubectl's short forms: -ojson, -o=json, -nkube-system.
      inline = arg.slice(2).replace(/^=/, '');
      arg = arg.slice(0, 2);
    }
    if (!arg.startsWith('-') || arg === '-') {
      if (sub === undefined) sub = arg;
      else positional.push(arg);
      continue;
    }
    const scope = sub ?? '';
    const takes = (VALUE_FLAGS[''] ?? []).includes(arg) || (sub !== undefined && (VALUE_FLAGS[scope] ?? []).includes(arg));
    const isBool = (BOOL_FLAGS[''] ?? []).includes(arg) || (sub !== undefined && (BOOL_FLAGS[scope] ?? []).includes(arg));
    if (takes) {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      flags.set(arg, v);
    } else if (isBool) {
      if (inline !== undefined) throw new UsageError(`${arg} takes no value`);
      bools.add(arg);
    } else {
      throw new UsageError(sub ? `unknown flag ${arg} for "${sub}"` : `unknown flag ${arg}`);
    }
  }
  const get = (...names: string[]) => names.map((n) => flags.get(n)).find((v) => v !== undefined);
  const kubeconfig = get('--kubeconfig');
  if (kubeconfig !== undefined) global.kubeconfig = kubeconfig;
  const context = get('--context');
  if (context !== undefined) global.context = context;
  const out = get('-o', '--output');
  if (out !== undefined) {
    if (out !== 'table' && out !== 'json') throw new UsageError(`--output must be table or json, got "${out}"`);
    global.output = out;
  }
  const ans = get('--agent-namespace');
  if (ans !== undefined) global.agentNamespace = ans;
  const rt = get('--request-timeout');
  if (rt !== undefined) {
    global.requestTimeoutMs = parseDuration(rt);
    if (global.requestTimeoutMs <= 0) throw new UsageError('--request-timeout must be positive');
  }
  if (bools.has('-h') || bools.has('--help') || sub === undefined || sub === 'help') return { global, command: { name: 'help' } };
  const noPositional = () => {
    if (positional.length) throw new UsageError(`"${sub}" takes no arguments, got "${positional[0]}"`);
  };
  switch (sub) {
    case 'status':
      noPositional();
      return { global, command: { name: 'status' } };
    case 'endpoints': {
      noPositional();
      const ns = get('-n', '--namespace');
      const all = bools.has('-A') || bools.has('--all-namespaces');
      if (ns !== undefined && all) throw new UsageError('-n and -A exclude each other');
      return { global, command: { name: 'endpoints', allNamespaces: all, ...(ns !== undefined ? { namespace: ns } : {}) } };
    }
    case 'policy': {
      if (positional.length !== 1) throw new UsageError('usage: kubectl palisade policy NAMESPACE/POD');
      return { global, command: { name: 'policy', pod: parsePodRef(positional[0]!, 'the pod') } };
    }
    case 'trace': {
      if (positional.length !== 2) throw new UsageError('usage: kubectl palisade trace NS/SRC NS/DST --port P [--protocol TCP]');
      const ref = (t: string, what: string) => (parseIpv4(t) !== undefined ? t : parsePodRef(t, what));
      const portText = get('--port');
      if (portText === undefined) throw new UsageError('trace needs --port');
      const protocol = (get('--protocol') ?? 'TCP').toUpperCase();
      if (!PROTOCOLS.includes(protocol as TraceProtocol)) throw new UsageError(`--protocol must be TCP, UDP or SCTP, got "${protocol}"`);
      return {
        global,
        command: {
          name: 'trace', src: ref(positional[0]!, 'the source'), dst: ref(positional[1]!, 'the destination'),
          port: int(portText, '--port', 1, 65535), protocol: protocol as TraceProtocol,
        },
      };
    }
    case 'observe': {
      noPositional();
      const c: Extract<Command, { name: 'observe' }> = { name: 'observe', follow: bools.has('--follow') || bools.has('-f') };
      const verdict = get('--verdict');
      if (verdict !== undefined) {
        if (!VERDICTS.includes(verdict as FlowVerdict)) throw new UsageError(`--verdict must be one of ${VERDICTS.join(', ')}, got "${verdict}"`);
        c.verdict = verdict as FlowVerdict;
      }
      const pod = get('--pod');
      if (pod !== undefined) c.pod = parsePodRef(pod, '--pod');
      const since = get('--since');
      if (since !== undefined) c.sinceMs = parseDuration(since);
      const limit = get('--limit');
      if (limit !== undefined) c.limit = int(limit, '--limit', 1, 100_000);
      return { global, command: c };
    }
    default:
      throw new UsageError(`unknown command "${sub}": use status, endpoints, policy, trace or observe`);
  }
}
