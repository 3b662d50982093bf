/**
 * HTTP rule matching: the pure half of L7 policy. A rule (PalisadeNetworkPolicy `http`
 * entry) matches a request when every field it sets matches:
 *
 * - `method`: a regular expression anchored at both ends, matched case-sensitively against
 *   the request method as sent (HTTP methods are case-sensitive: `get` does not match GET).
 * - `path`: a regular expression anchored at both ends, matched against the request path
 *   WITHOUT its query string (`/public(/.*)?` matches `/public?x=1`), as sent on the wire
 *   (no percent-decoding; the proxy rejects dot-segments before any rule sees the path).
 * - `host`: exact, case-insensitive match on the Host header. A rule host without a port
 *   ignores the request's port (`api.example.com` matches `API.example.com:8080`); a rule
 *   host with a port (`api.example.com:8080`) must match host and port.
 * - `headers`: every entry must match; the name is case-insensitive; without `value` the
 *   header must be present, with `value` one of its field lines must equal it exactly
 *   (case-sensitive, after the usual trimming of surrounding whitespace).
 *
 * Regular expressions are compiled once per rule object and cached. A rule whose regex does
 * not compile never matches (fail closed); validateHttpRules names it so that the agent can
 * refuse the policy with an event.
 *
 * The proxy runs inside the agent, so a pattern such as `(a+)+` that backtracks
 * exponentially on a long path would stall policy, CNI and every proxied connection of the
 * node. So V8 is told to finish any regex that backtracks excessively on its linear-time
 * engine (normal patterns keep the fast backtracking engine: about 13 ns against 420 ns
 * per match here), and a pattern that engine cannot run (backreferences, lookaheads) is
 * refused by validation, so that the fallback is always possible.
 */
import { setFlagsFromString } from 'node:v8';
import type { HttpRule } from '../policy/snapshot.ts';
import type { RequestInfo } from './types.ts';

/** A rule problem, in the same shape as the policy compiler's PortProblem. */
export interface HttpRuleProblem {
  /** Path of the offending field, e.g. `spec.ingress[0].ports[0].http[1].path`. */
  field: string;
  message: string;
}

interface CompiledHostRule {
  name: string;
  /** Present when the rule names a port: then host and port must both match. */
  hostPort?: string;
}

interface CompiledHttpRule {
  ok: boolean;
  method?: RegExp;
  path?: RegExp;
  host?: CompiledHostRule;
  headers: { name: string; value?: string }[];
}

const compiled = new WeakMap<HttpRule, CompiledHttpRule>();

// The `l` flag (used here only to check patterns) and the fall-back of any regex of the
// process to the linear engine after 50,000 backtracks (V8's default threshold).
setFlagsFromString('--enable-experimental-regexp-engine');
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
/** Whether this V8 has the linear-time engine (else patterns are not checked for it). */
const HAS_LINEAR_ENGINE = ((): boolean => {
  try {
    // eslint-disable-next-line no-invalid-regexp -- V8's linear engine flag, enabled above
    new RegExp('a', 'l');
    return true;
  } catch {
    return false;
  }
})();

/** Regexes by source, shared between rule objects (a policy update recreates the rules). */
const regexBySource = new Map<string, RegExp | null>();
const REGEX_CACHE_MAX = 4096;

/**
 * Compiles `src` anchored at both ends, or returns an error message. The source is first
 * compiled on its own so that a pattern like `a)|(b` cannot escape the anchoring group.
 */
function anchored(src: string): RegExp | string {
  const hit = regexBySource.get(src);
  if (hit !== undefined) return hit ?? 'invalid regular expression';
  let re: RegExp | null = null;
  let err = '';
  try {
    new RegExp(src);
    try {
      // eslint-disable-next-line no-invalid-regexp -- V8's linear engine flag, enabled above
      if (HAS_LINEAR_ENGINE) new RegExp(`^(?:${src})$`, 'l');
      re = new RegExp(`^(?:${src})$`);
    } catch {
      err = 'invalid regular expression: cannot match in linear time (backreferences and lookaheads are not supported)';
    }
  } catch (e) {
    err = `invalid regular expression: ${(e as Error).message}`;
  }
  if (regexBySource.size >= REGEX_CACHE_MAX) regexBySource.clear();
  regexBySource.set(src, re);
  return re ?? err;
}

/** Splits a Host value into lowercase name and port (`[v6]:p`, `name:p`, `name`). */
export function splitHost(host: string): { name: string; port?: string } {
  const h = host.toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return { name: h };
    const rest = h.slice(end + 1);
    return rest.startsWith(':') ? { name: h.slice(0, end + 1), port: rest.slice(1) } : { name: h.slice(0, end + 1) };
  }
  const colon = h.indexOf(':');
  if (colon < 0 || h.indexOf(':', colon + 1) >= 0) return { name: h };
  return { name: h.slice(0, colon), port: h.slice(colon + 1) };
}

function compileRule(rule: HttpRule, field: string, problems: HttpRuleProblem[]): CompiledHttpRule {
  const c: CompiledHttpRule = { ok: true, headers: [] };
  for (const k of ['method', 'path'] as const) {
    const src = rule[k];
    if (src === undefined) continue;
    if (typeof src !== 'string') {
      problems.push({ field: `${field}.${k}`, message: `${k} is not a string` });
      c.ok = false;
      continue;
    }
    const re = anchored(src);
    if (typeof re === 'string') {
      problems.push({ field: `${field}.${k}`, message: re });
      c.ok = false;
    } else {
      c[k] = re;
    }
  }
  if (rule.host !== undefined) {
    if (typeof rule.host !== 'string' || rule.host === '') {
      problems.push({ field: `${field}.host`, message: 'host is not a non-empty string' });
      c.ok = false;
    } else {
      const { name, port } = splitHost(rule.host);
      c.host = port === undefined ? { name } : { name, hostPort: `${name}:${port}` };
    }
  }
  if (rule.headers !== undefined) {
    if (!Array.isArray(rule.headers)) {
      problems.push({ field: `${field}.headers`, message: 'headers is not a list' });
      c.ok = false;
    } else {
      rule.headers.forEach((h, i) => {
        if (typeof h !== 'object' || h === null || typeof h.name !== 'string' || h.name === ''
          || (h.value !== undefined && typeof h.value !== 'string')) {
          problems.push({ field: `${field}.headers[${i}]`, message: 'header needs a name and a string value' });
          c.ok = false;
          return;
        }
        c.headers.push(h.value === undefined ? { name: h.name.toLowerCase() } : { name: h.name.toLowerCase(), value: h.value });
      });
    }
  }
  return c;
}

function compiledOf(rule: HttpRule): CompiledHttpRule {
  let c = compiled.get(rule);
  if (c === undefined) {
    c = compileRule(rule, '', []);
    compiled.set(rule, c);
  }
  return c;
}

/**
 * Checks a list of rules; returns every problem (empty when all compile). `field` is the
 * list's path, e.g. `spec.ingress[0].ports[0].http`.
 */
export function validateHttpRules(rules: readonly HttpRule[], field = 'http'): HttpRuleProblem[] {
  const problems: HttpRuleProblem[] = [];
  if (!Array.isArray(rules)) return [{ field, message: 'http is not a list' }];
  rules.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) {
      problems.push({ field: `${field}[${i}]`, message: 'http rule is not an object' });
      return;
    }
    compiled.set(r, compileRule(r, `${field}[${i}]`, problems));
  });
  return problems;
}

/** The path part of a request-target (query string removed). */
export function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** Whether `rule` matches `req` (see the module comment). An invalid rule never matches. */
export function matchHttpRule(rule: HttpRule, req: RequestInfo): boolean {
  const c = compiledOf(rule);
  if (!c.ok) return false;
  if (c.method && !c.method.test(req.method)) return false;
  if (c.path && !c.path.test(pathOnly(req.path))) return false;
  if (c.host) {
    if (req.host === undefined) return false;
    const { name, port } = splitHost(req.host);
    if (c.host.hostPort !== undefined) {
      if (port === undefined || `${name}:${port}` !== c.host.hostPort) return false;
    } else if (name !== c.host.name) {
      return false;
    }
  }
  for (const h of c.headers) {
    const values = req.headers.get(h.name);
    if (values === undefined || values.length === 0) return false;
    if (h.value !== undefined && !values.includes(h.value)) return false;
  }
  return true;
}

/** Whether any rule of the list matches (the union a port's `http` list means). */
export function matchAnyHttpRule(rules: readonly HttpRule[], req: RequestInfo): boolean {
  for (const r of rules) if (matchHttpRule(r, req)) return true;
  return false;
}
