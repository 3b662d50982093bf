/**
 * The CNI request as it travels from the shim to the agent (POST /v1/cni body), and its
 * validation from the CNI environment and the stdin network config. Validation happens
 * in the shim (so that bad input never reaches the agent) and again in the agent (which
 * is the authority). Imports only its siblings (the shim loads it).
 */
import { parseCniArgs } from './args.ts';
import {
  CniError, CNI_ERR_DECODE, CNI_ERR_INCOMPATIBLE_VERSION, CNI_ERR_INVALID_CONFIG,
  CNI_ERR_INVALID_ENV, CNI_ERR_UNSUPPORTED_FIELD,
} from './errors.ts';
import { COMMAND_MIN_VERSION, compareVersions, isSupportedVersion, SUPPORTED_VERSIONS } from './version.ts';

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

export const DEFAULT_AGENT_SOCKET = '/var/run/palisade/cni.sock';
/** The spool for DELs made while the agent is down: `pending-del/` next to the socket. */
export function defaultPendingDelDir(agentSocket: string): string {
  const slash = agentSocket.lastIndexOf('/');
  return `${slash > 0 ? agentSocket.slice(0, slash) : ''}/pending-del`;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The network config fields Palisade reads; others are carried through untouched. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type?: string;
  /** MTU of both veth ends; default: the node's default-route device MTU, else 1500. */
  mtu?: number;
  /** The agent's API socket. */
  agentSocket?: string;
  /** Where the shim records DELs made while the agent is down. */
  pendingDelDir?: string;
  /** How long the shim waits for the agent's answer, ms (default 120000). */
  agentTimeoutMs?: number;
  prevResult?: Record<string, unknown>;
  'cni.dev/valid-attachments'?: Attachment[];
  [key: string]: unknown;
}

/** POST /v1/cni body. */
export interface CniRequest {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifName: string;
  args: Record<string, string>;
  path: string;
  config: NetConf;
}

const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Linux interface name rules (dev_valid_name): 1..15 bytes, no '/', ':', whitespace. */
export function validIfName(name: string): boolean {
  return name.length > 0 && Buffer.byteLength(name) <= 15 && name !== '.' && name !== '..'
    && !/[/:\s]/.test(name);
}

/** The command from the environment (code 4 when absent or unknown). */
export function parseCommand(env: NodeJS.ProcessEnv): CniCommand {
  const cmd = env.CNI_COMMAND;
  if (!cmd) throw new CniError(CNI_ERR_INVALID_ENV, 'CNI_COMMAND is not set');
  if (!(CNI_COMMANDS as readonly string[]).includes(cmd)) {
    throw new CniError(CNI_ERR_INVALID_ENV, `unknown CNI_COMMAND "${cmd}"`);
  }
  return cmd as CniCommand;
}

/** Decodes stdin as a JSON object (code 6 otherwise). */
export function decodeConfig(stdin: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CNI_ERR_DECODE, 'decoding network config', (err as Error).message);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CniError(CNI_ERR_DECODE, 'decoding network config', 'stdin is not a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function invalid(msg: string): CniError {
  return new CniError(CNI_ERR_INVALID_CONFIG, msg);
}

function absPath(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !v.startsWith('/')) throw invalid(`${field} must be an absolute path`);
  return v;
}

/** Validates the network config for a command; throws a CniError with the spec's code. */
export function validateConfig(command: CniCommand, raw: Record<string, unknown>): NetConf {
  const v = raw.cniVersion;
  if (typeof v !== 'string' || v === '') throw invalid('cniVersion is missing');
  if (!isSupportedVersion(v)) {
    throw new CniError(CNI_ERR_INCOMPATIBLE_VERSION, `unsupported cniVersion "${v}"`,
      `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const min = COMMAND_MIN_VERSION[command] ?? '0.3.0';
  if (compareVersions(v, min) < 0) {
    throw new CniError(CNI_ERR_INCOMPATIBLE_VERSION, `${command} needs cniVersion >= ${min}, got ${v}`);
  }
  if (typeof raw.name !== 'string' || !NETWORK_NAME_RE.test(raw.name)) {
    throw invalid('name is missing or not a valid network name');
  }
  if (raw.ipam !== undefined) {
    throw new CniError(CNI_ERR_UNSUPPORTED_FIELD, 'unsupported field "ipam"',
      'palisade allocates addresses itself, from the node\'s pod CIDR');
  }
  if (raw.mtu !== undefined && (!Number.isInteger(raw.mtu) || (raw.mtu as number) < 68
      || (raw.mtu as number) > 65535)) {
    throw invalid('mtu must be an integer in 68..65535');
  }
  absPath(raw.agentSocket, 'agentSocket');
  absPath(raw.pendingDelDir, 'pendingDelDir');
  if (raw.agentTimeoutMs !== undefined
      && (!Number.isInteger(raw.agentTimeoutMs) || (raw.agentTimeoutMs as number) <= 0)) {
    throw invalid('agentTimeoutMs must be a positive integer');
  }
  if (raw.prevResult !== undefined
      && (raw.prevResult === null || typeof raw.prevResult !== 'object' || Array.isArray(raw.prevResult))) {
    throw invalid('prevResult must be an object');
  }
  if (command === 'GC') {
    // libcni sends both keys (a spec typo kept for compatibility); prefer the spec's.
    const list = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'] ?? [];
    if (!Array.isArray(list) || !list.every((a) => a && typeof a === 'object'
        && typeof a.containerID === 'string' && typeof a.ifname === 'string')) {
      throw invalid('cni.dev/valid-attachments must be a list of {containerID, ifname}');
    }
    raw['cni.dev/valid-attachments'] = list as Attachment[];
  }
  return raw as NetConf;
}

/**
 * Builds the request from the environment and the decoded config. Which variables are
 * required depends on the command (spec 1.1, "Parameters"): DEL tolerates an empty
 * CNI_NETNS (the namespace may be gone); STATUS and GC need no container.
 */
export function buildRequest(env: NodeJS.ProcessEnv, command: CniCommand,
  config: NetConf): CniRequest {
  const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifName = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (perContainer) {
    if (!containerId) throw new CniError(CNI_ERR_INVALID_ENV, 'CNI_CONTAINERID is not set');
    if (!CONTAINER_ID_RE.test(containerId)) {
      throw new CniError(CNI_ERR_INVALID_ENV, `invalid CNI_CONTAINERID "${containerId}"`);
    }
    if (!ifName) throw new CniError(CNI_ERR_INVALID_ENV, 'CNI_IFNAME is not set');
    if (!validIfName(ifName)) throw new CniError(CNI_ERR_INVALID_ENV, `invalid CNI_IFNAME "${ifName}"`);
    if (command !== 'DEL' && !netns) throw new CniError(CNI_ERR_INVALID_ENV, 'CNI_NETNS is not set');
    if (netns && !netns.startsWith('/')) {
      throw new CniError(CNI_ERR_INVALID_ENV, `CNI_NETNS must be a path, got "${netns}"`);
    }
  }
  const args = perContainer ? parseCniArgs(env.CNI_ARGS) : {};
  return { command, containerId, netns, ifName, args, path: env.CNI_PATH ?? '', config };
}

/** Validates a request body the agent received (same rules as the shim). */
export function validateRequest(body: unknown): CniRequest {
  if (!body || typeof body !== 'object') throw new CniError(CNI_ERR_DECODE, 'request body is not an object');
  const b = body as Record<string, unknown>;
  if (typeof b.command !== 'string' || !(CNI_COMMANDS as readonly string[]).includes(b.command)) {
    throw new CniError(CNI_ERR_INVALID_ENV, `unknown command "${String(b.command)}"`);
  }
  const command = b.command as CniCommand;
  if (!b.config || typeof b.config !== 'object') throw new CniError(CNI_ERR_DECODE, 'config is missing');
  const config = validateConfig(command, b.config as Record<string, unknown>);
  const args = (b.args && typeof b.args === 'object') ? b.args as Record<string, string> : {};
  const argStr = Object.entries(args).map(([k, v]) => `${k}=${v}`).join(';');
  return buildRequest({
    CNI_CONTAINERID: typeof b.containerId === 'string' ? b.containerId : '',
    CNI_IFNAME: typeof b.ifName === 'string' ? b.ifName : '',
    CNI_NETNS: typeof b.netns === 'string' ? b.netns : '',
    CNI_ARGS: argStr,
    CNI_PATH: typeof b.path === 'string' ? b.path : '',
  }, command, config);
}
