/**
 * Label and field selectors in their query-string form (`labelSelector=`,
 * `fieldSelector=`), parsed once per request. Grammar follows the Kubernetes docs:
 * label requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
 * joined by commas; field requirements `f=v`, `f==v`, `f!=v`.
 */
import { badRequest } from './errors.ts';
import { getPath } from './json.ts';

export type LabelOp = 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists';

export interface LabelRequirement {
  key: string;
  op: LabelOp;
  values: string[];
}

export type Selector = (labels: Record<string, string> | undefined) => boolean;

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

function checkKey(k: string, whole: string): string {
  if (!KEY.test(k)) throw badRequest(`unable to parse requirement: invalid label key "${k}" in selector "${whole}"`);
  return k;
}

function checkValue(v: string, whole: string): string {
  if (!VALUE.test(v)) throw badRequest(`unable to parse requirement: invalid label value "${v}" in selector "${whole}"`);
  return v;
}

/** Parses a label selector string; throws a 400 ApiError naming the bad part. */
export function parseLabelSelector(s: string): LabelRequirement[] {
  const whole = s;
  const reqs: LabelRequirement[] = [];
  if (s.trim() === '') return reqs;
  for (const raw of splitTop(s)) {
    const part = raw.trim();
    if (part === '') throw badRequest(`unable to parse requirement: empty requirement in selector "${whole}"`);
    let m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (m) {
      const values = (m[3] as string).split(',').map((v) => checkValue(v.trim(), whole));
      reqs.push({ key: checkKey(m[1] as string, whole), op: m[2] as LabelOp, values });
      continue;
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (m) {
      const op: LabelOp = m[2] === '!=' ? 'neq' : 'eq';
      reqs.push({ key: checkKey(m[1] as string, whole), op, values: [checkValue(m[3] as string, whole)] });
      continue;
    }
    m = /^!\s*(\S+)$/.exec(part);
    if (m) {
      reqs.push({ key: checkKey(m[1] as string, whole), op: 'notexists', values: [] });
      continue;
    }
    if (/^\S+$/.test(part)) {
      reqs.push({ key: checkKey(part, whole), op: 'exists', values: [] });
      continue;
    }
    throw badRequest(`unable to parse requirement: "${part}" in selector "${whole}"`);
  }
  return reqs;
}

export function matchLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'eq':
        return has && v === r.values[0];
      case 'neq':
        return !has || v !== r.values[0];
      case 'in':
        return has && r.values.includes(v as string);
      case 'notin':
        return !has || !r.values.includes(v as string);
      case 'exists':
        return has;
      case 'notexists':
        return !has;
    }
    return false;
  });
}

export interface FieldRequirement {
  field: string;
  neq: boolean;
  value: string;
}

/**
 * Parses a field selector, rejecting fields the resource does not index (the real server
 * answers 400 "field label not supported", which surfaces client bugs early).
 */
export function parseFieldSelector(s: string, allowed: string[]): FieldRequirement[] {
  const reqs: FieldRequirement[] = [];
  if (s.trim() === '') return reqs;
  for (const raw of s.split(',')) {
    const part = raw.trim();
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${part}'`);
    const field = m[1] as string;
    if (!allowed.includes(field)) throw badRequest(`field label not supported: ${field}`);
    reqs.push({ field, neq: m[2] === '!=', value: m[3] as string });
  }
  return reqs;
}

/** Field values compare as strings, as upstream's field sets do (booleans "true"/"false"). */
export function matchFields(reqs: FieldRequirement[], obj: unknown): boolean {
  return reqs.every((r) => {
    const raw = getPath(obj, r.field);
    const v = raw === undefined || raw === null ? '' : String(raw);
    return r.neq ? v !== r.value : v === r.value;
  });
}
