/**
 * Label selectors (NETPOL 13): `matchLabels` AND every `matchExpressions` requirement.
 * `In`/`NotIn` need a non-empty `values`; `Exists`/`DoesNotExist` take none; `NotIn` and
 * `DoesNotExist` match objects lacking the key. An empty selector matches everything.
 */
import type { LabelSelector } from './snapshot.ts';

type Labels = Readonly<Record<string, string>>;

interface Requirement {
  key: string;
  op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: ReadonlySet<string>;
}

export interface CompiledSelector {
  /** Canonical text: equal keys select the same objects. */
  key: string;
  /** True for `{}` (or an absent selector where that means "all"). */
  empty: boolean;
  /** matchLabels (and single-value `In`) pairs every match must carry: usable as an index. */
  required: readonly [string, string][];
  matches(labels: Labels): boolean;
}

export interface SelectorError {
  /** Field relative to the selector, e.g. `matchExpressions[0].operator`. */
  field: string;
  message: string;
}

const isStr = (v: unknown): v is string => typeof v === 'string';

/** Validates and compiles a selector; returns the errors instead when it is invalid. */
export function compileSelector(
  sel: LabelSelector | undefined | null,
): CompiledSelector | { errors: SelectorError[] } {
  const errors: SelectorError[] = [];
  if (sel === undefined || sel === null) sel = {};
  if (typeof sel !== 'object' || Array.isArray(sel)) {
    return { errors: [{ field: '', message: 'selector is not an object' }] };
  }
  const pairs: [string, string][] = [];
  const ml = sel.matchLabels ?? {};
  if (typeof ml !== 'object' || Array.isArray(ml) || ml === null) {
    errors.push({ field: 'matchLabels', message: 'matchLabels is not a map' });
  } else {
    for (const [k, v] of Object.entries(ml)) {
      if (!isStr(v)) errors.push({ field: `matchLabels.${k}`, message: 'value is not a string' });
      else pairs.push([k, v]);
    }
  }
  const reqs: Requirement[] = [];
  const exprs = sel.matchExpressions ?? [];
  if (!Array.isArray(exprs)) {
    errors.push({ field: 'matchExpressions', message: 'matchExpressions is not a list' });
  } else {
    exprs.forEach((e, i) => {
      const f = `matchExpressions[${i}]`;
      if (typeof e !== 'object' || e === null || !isStr(e.key) || e.key === '') {
        errors.push({ field: `${f}.key`, message: 'key is missing' });
        return;
      }
      const values = e.values ?? [];
      if (!Array.isArray(values) || !values.every(isStr)) {
        errors.push({ field: `${f}.values`, message: 'values is not a list of strings' });
        return;
      }
      switch (e.operator) {
        case 'In':
        case 'NotIn':
          if (values.length === 0) {
            errors.push({ field: `${f}.values`, message: `operator ${e.operator} needs values` });
            return;
          }
          break;
        case 'Exists':
        case 'DoesNotExist':
          if (values.length > 0) {
            errors.push({ field: `${f}.values`, message: `operator ${e.operator} takes no values` });
            return;
          }
          break;
        default:
          errors.push({ field: `${f}.operator`, message: `unsupported operator ${JSON.stringify(e.operator)}` });
          return;
      }
      reqs.push({ key: e.key, op: e.operator, values: new Set(values) });
    });
  }
  if (errors.length > 0) return { errors };

  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const reqText = reqs
    .map((r) => JSON.stringify([r.key, r.op, [...r.values].sort()]))
    .sort();
  const key = JSON.stringify([pairs, reqText]);
  const required = [...pairs];
  for (const r of reqs) {
    if (r.op === 'In' && r.values.size === 1) required.push([r.key, [...r.values][0]!]);
  }
  const matches = (labels: Labels): boolean => {
    for (const [k, v] of pairs) if (labels[k] !== v) return false;
    for (const r of reqs) {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      switch (r.op) {
        case 'In':
          if (!has || !r.values.has(labels[r.key]!)) return false;
          break;
        case 'NotIn':
          if (has && r.values.has(labels[r.key]!)) return false;
          break;
        case 'Exists':
          if (!has) return false;
          break;
        case 'DoesNotExist':
          if (has) return false;
          break;
      }
    }
    return true;
  };
  return { key, empty: pairs.length === 0 && reqs.length === 0, required, matches };
}

export function isSelectorError(
  s: CompiledSelector | { errors: SelectorError[] },
): s is { errors: SelectorError[] } {
  return 'errors' in s;
}
