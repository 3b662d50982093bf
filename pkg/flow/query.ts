/**
 * Parsing and bounding the query of `GET /v1/flows` (docs/agent-api.md): every parameter
 * is checked, unknown ones are refused, so a typo never silently widens a query.
 */
import { DEFAULT_FLOW_CAPACITY, DEFAULT_FLOW_LIMIT } from './store.ts';
import type { FlowFilter, FlowVerdict } from './types.ts';

const VERDICTS = new Set<FlowVerdict>(['allowed', 'dropped', 'redirected', 'denied']);
const KNOWN = new Set(['verdict', 'pod', 'since', 'limit', 'follow']);
/** namespace/name: a DNS label and a DNS subdomain (what the API server accepts). */
const POD_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$/;

export class FlowQueryError extends Error {
  readonly code = 'PAL_BAD_REQUEST';
  constructor(message: string) {
    super(message);
    this.name = 'FlowQueryError';
  }
}

export interface FlowQuery {
  filter: FlowFilter;
  follow: boolean;
}

function single(name: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new FlowQueryError(`${name}: given more than once`);
  return v;
}

function integer(name: string, v: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(v)) throw new FlowQueryError(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v.slice(0, 40))}`);
  const n = Number(v);
  if (n < min || n > max) throw new FlowQueryError(`${name} must be an integer in ${min}..${max}, got ${n}`);
  return n;
}

/**
 * Turns the raw query (fastify's parsed querystring: string or string[] values) into a
 * filter with `limit` set, or throws FlowQueryError naming the bad parameter.
 * `maxLimit` is the store's capacity.
 */
export function parseFlowQuery(raw: Record<string, unknown>, maxLimit = DEFAULT_FLOW_CAPACITY): FlowQuery {
  for (const k of Object.keys(raw)) {
    if (!KNOWN.has(k)) throw new FlowQueryError(`unknown query parameter ${JSON.stringify(k.slice(0, 40))} (known: ${[...KNOWN].join(', ')})`);
  }
  const filter: FlowFilter = { limit: DEFAULT_FLOW_LIMIT };
  const verdict = single('verdict', raw.verdict);
  if (verdict !== undefined) {
    if (!VERDICTS.has(verdict as FlowVerdict)) {
      throw new FlowQueryError(`verdict must be one of ${[...VERDICTS].join(', ')}, got ${JSON.stringify(verdict.slice(0, 40))}`);
    }
    filter.verdict = verdict as FlowVerdict;
  }
  const pod = single('pod', raw.pod);
  if (pod !== undefined) {
    if (!POD_RE.test(pod)) throw new FlowQueryError(`pod must be namespace/name, got ${JSON.stringify(pod.slice(0, 80))}`);
    filter.pod = pod;
  }
  const since = single('since', raw.since);
  if (since !== undefined) filter.since = integer('since', since, 0, Number.MAX_SAFE_INTEGER);
  const limit = single('limit', raw.limit);
  if (limit !== undefined) filter.limit = integer('limit', limit, 1, maxLimit);
  const follow = single('follow', raw.follow);
  let following = false;
  if (follow !== undefined) {
    if (follow === '1' || follow === 'true') following = true;
    else if (follow !== '0' && follow !== 'false') throw new FlowQueryError(`follow must be 1, true, 0 or false, got ${JSON.stringify(follow.slice(0, 40))}`);
  }
  return { filter, follow: following };
}
