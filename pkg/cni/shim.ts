/**
 * The CNI plugin proper: reads the CNI environment and the stdin network config,
 * answers VERSION itself, forwards every other command to the node agent (POST /v1/cni
 * over its unix socket) and turns the answer into stdout + exit status per the spec.
 *
 * Contract with the runtime:
 * - stdout carries only the result (ADD) or the spec error object; logs go to stderr;
 * - any error exits non-zero with `{cniVersion, code, msg, details}` on stdout;
 * - DEL never fails because the agent is down: it is recorded in the pending-DEL spool
 *   and completed by the agent when it returns.
 *
 * Imports only node builtins and its siblings, so that it starts fast and can be bundled.
 */
import { postCni, AgentUnreachableError } from './client.ts';
import {
  CniError, causeText, CNI_ERR_NOT_AVAILABLE, CNI_ERR_TRY_AGAIN_LATER, PAL_CNI_BAD_AGENT_ANSWER,
} from './errors.ts';
import {
  buildRequest, decodeConfig, defaultPendingDelDir, DEFAULT_AGENT_SOCKET, parseCommand,
  validateConfig, type CniCommand, type CniRequest,
} from './request.ts';
import { isSupportedVersion, LATEST_VERSION, SUPPORTED_VERSIONS } from './version.ts';

export interface ShimOutput {
  stdout: string;
  /** Lines for stderr (logs). */
  log: string[];
  exitCode: number;
}

export interface ShimTiming {
  /** ms since process start when the request was handed to the socket. */
  requestSentMs?: number;
  /** ms the round trip to the agent took. */
  agentMs?: number;
  /** ms since process start when the socket connected, and when the answer began. */
  connectedMs?: number;
  firstByteMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;

function errorOut(version: string, err: CniError, log: string[]): ShimOutput {
  const body = { cniVersion: version, ...err.toJSON() };
  return { stdout: `${JSON.stringify(body)}\n`, log, exitCode: 1 };
}

/** The cniVersion to stamp on output: the config's when we support it, else the latest. */
function outputVersion(raw: Record<string, unknown> | undefined): string {
  const v = raw?.cniVersion;
  return isSupportedVersion(v) ? v : LATEST_VERSION;
}

/**
 * Runs one plugin invocation. `now` returns ms since process start (performance.now()).
 */
export async function runShim(env: NodeJS.ProcessEnv, stdin: string,
  now: () => number = () => performance.now(), timing: ShimTiming = {}): Promise<ShimOutput> {
  const log: string[] = [];
  let raw: Record<string, unknown> | undefined;
  let command: CniCommand;
  try {
    command = parseCommand(env);
    if (command === 'VERSION') {
      // VERSION may come with an empty stdin; answer from what we can read.
      try { raw = stdin.trim() ? decodeConfig(stdin) : undefined; } catch { raw = undefined; }
      const body = { cniVersion: outputVersion(raw), supportedVersions: [...SUPPORTED_VERSIONS] };
      return { stdout: `${JSON.stringify(body)}\n`, log, exitCode: 0 };
    }
    raw = decodeConfig(stdin);
  } catch (err) {
    return errorOut(outputVersion(raw), toCniError(err), log);
  }
  const version = outputVersion(raw);
  let req: CniRequest;
  try {
    const config = validateConfig(command, raw);
    req = buildRequest(env, command, config);
  } catch (err) {
    return errorOut(version, toCniError(err), log);
  }
  const socket = req.config.agentSocket ?? DEFAULT_AGENT_SOCKET;
  const timeoutMs = req.config.agentTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  let answer;
  try {
    timing.requestSentMs = now();
    const t0 = timing.requestSentMs;
    answer = await postCni(socket, req, timeoutMs,
      { 'x-palisade-shim-ms': timing.requestSentMs.toFixed(3) }, timing);
    timing.agentMs = now() - t0;
  } catch (err) {
    if (err instanceof AgentUnreachableError) return agentDown(req, version, err, log);
    return errorOut(version, new CniError(CNI_ERR_TRY_AGAIN_LATER, 'talking to the agent', causeText(err)), log);
  }
  return fromAnswer(req, version, answer.status, answer.body, log);
}

async function agentDown(req: CniRequest, version: string, err: AgentUnreachableError,
  log: string[]): Promise<ShimOutput> {
  if (req.command === 'DEL') {
    // Loaded only here: the spool needs node:crypto, which the common path never pays for.
    const { spoolDel } = await import('./spool.ts');
    const dir = req.config.pendingDelDir
      ?? defaultPendingDelDir(req.config.agentSocket ?? DEFAULT_AGENT_SOCKET);
    try {
      const file = spoolDel(dir, req);
      log.push(`palisade-cni: ${err.message}; DEL recorded in ${file}, the agent completes it when it returns`);
      return { stdout: '', log, exitCode: 0 };
    } catch (spoolErr) {
      return errorOut(version, new CniError(CNI_ERR_TRY_AGAIN_LATER,
        'agent unreachable and recording the DEL failed', causeText(spoolErr)), log);
    }
  }
  if (req.command === 'STATUS') {
    return errorOut(version, new CniError(CNI_ERR_NOT_AVAILABLE, 'agent unreachable', err.message), log);
  }
  return errorOut(version, new CniError(CNI_ERR_TRY_AGAIN_LATER, 'agent unreachable', err.message), log);
}

function fromAnswer(req: CniRequest, version: string, status: number, body: unknown,
  log: string[]): ShimOutput {
  const b = (body && typeof body === 'object') ? body as Record<string, unknown> : {};
  const e = b.error as Record<string, unknown> | undefined;
  if (e && typeof e === 'object' && typeof e.code === 'number' && typeof e.msg === 'string') {
    const details = typeof e.details === 'string' ? e.details : undefined;
    return errorOut(version, new CniError(e.code, e.msg, details), log);
  }
  if (status !== 200) {
    return errorOut(version, new CniError(PAL_CNI_BAD_AGENT_ANSWER,
      `agent answered HTTP ${status}`, JSON.stringify(body).slice(0, 500)), log);
  }
  if (req.command === 'ADD') {
    if (!b.result || typeof b.result !== 'object') {
      return errorOut(version, new CniError(PAL_CNI_BAD_AGENT_ANSWER, 'agent answered without a result'), log);
    }
    return { stdout: `${JSON.stringify(b.result)}\n`, log, exitCode: 0 };
  }
  // DEL, CHECK, GC and STATUS print nothing on success.
  return { stdout: '', log, exitCode: 0 };
}

function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  return new CniError(CNI_ERR_TRY_AGAIN_LATER, 'unexpected failure', causeText(err));
}
