/**
 * Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), which is
 * what `kubectl get` asks for. Custom resources use their CRD's additionalPrinterColumns
 * (NAME plus the declared columns, or NAME and AGE when none are declared); built-in kinds
 * get the columns upstream prints for them, reduced to what this server knows.
 */
import { isObj, objAt, strAt, type KObject, type Obj } from './json.ts';
import type { PrinterColumn, ResourceType } from './registry.ts';

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

/** How much of each object a row carries (`includeObject` query parameter). */
export type IncludeObject = 'None' | 'Metadata' | 'Object';

/** Age in the short form kubectl prints ("45s", "3m20s", "5h", "2d3h", "3y"). */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (d < 365 * 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

function age(ts: unknown, now: number): string | null {
  if (typeof ts !== 'string') return '<unknown>';
  const t = Date.parse(ts);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

/**
 * Evaluates the JSONPath subset CRDs use in printer columns: `.a.b`, `.a[0].b`,
 * `.a[*].b`, `.a['x.y']`, optionally wrapped in `{}`. Returns every match.
 */
export function jsonPath(o: unknown, path: string): unknown[] {
  let p = path.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  const steps: string[] = [];
  const re = /\.([^.[\]]+)|\[(\*|\d+|'[^']*'|"[^"]*")\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(p)) !== null) steps.push(m[1] !== undefined ? m[1] : (m[2] as string));
  let cur: unknown[] = [o];
  for (const s of steps) {
    const next: unknown[] = [];
    for (const c of cur) {
      if (s === '*') {
        if (Array.isArray(c)) next.push(...c);
        else if (isObj(c)) next.push(...Object.values(c));
      } else if (/^\d+$/.test(s) && Array.isArray(c)) {
        if (c[Number(s)] !== undefined) next.push(c[Number(s)]);
      } else if (isObj(c)) {
        const key = /^['"].*['"]$/.test(s) ? s.slice(1, -1) : s;
        if (c[key] !== undefined) next.push(c[key]);
      }
    }
    cur = next;
  }
  return cur;
}

function cellFor(col: PrinterColumn, o: KObject, now: number): unknown {
  const found = jsonPath(o, col.jsonPath);
  if (found.length === 0) return null;
  const v = found[0];
  if (v === null || v === undefined) return null;
  switch (col.type) {
    case 'date':
      return age(v, now);
    case 'integer':
    case 'number':
      return typeof v === 'number' ? v : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    default:
      if (found.length > 1) return found.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(',');
      return typeof v === 'string' ? v : JSON.stringify(v);
  }
}

const NAME_COL: ColumnDefinition = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
  priority: 0,
};

function col(name: string, type = 'string', priority = 0, description = ''): ColumnDefinition {
  return { name, type, format: '', description, priority };
}

const AGE_COL = col('Age', 'string', 0, 'CreationTimestamp is a timestamp representing the server time when this object was created.');

function selectorString(sel: unknown): string {
  const ml = objAt(objAt(sel).matchLabels);
  const parts = Object.entries(ml).map(([k, v]) => `${k}=${String(v)}`);
  for (const e of Array.isArray(objAt(sel).matchExpressions) ? (objAt(sel).matchExpressions as unknown[]) : []) {
    const x = objAt(e);
    const vals = Array.isArray(x.values) ? x.values.join(',') : '';
    const op = String(x.operator ?? '').toLowerCase();
    parts.push(op === 'exists' ? String(x.key) : op === 'doesnotexist' ? `!${String(x.key)}` : `${String(x.key)} ${op} (${vals})`);
  }
  return parts.length === 0 ? '<none>' : parts.join(',');
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObj) : [];
}

type Printer = { columns: ColumnDefinition[]; cells: (o: KObject, now: number) => unknown[] };

/** Columns upstream's printers show for the built-in kinds (subset of their fields). */
const BUILTIN: Record<string, Printer> = {
  Namespace: {
    columns: [NAME_COL, col('Status', 'string', 0, 'The status of the namespace'), AGE_COL],
    cells: (o, now) => [o.metadata.name, objAt(o.status).phase ?? null, age(o.metadata.creationTimestamp, now)],
  },
  Pod: {
    columns: [NAME_COL, col('Ready'), col('Status'), col('Restarts', 'string'), AGE_COL, col('IP', 'string', 1), col('Node', 'string', 1)],
    cells: (o, now) => {
      const spec = objAt(o.spec);
      const st = objAt(o.status);
      const statuses = arr(st.containerStatuses);
      const ready = statuses.filter((c) => c.ready === true).length;
      const restarts = statuses.reduce((n, c) => n + (typeof c.restartCount === 'number' ? c.restartCount : 0), 0);
      const phase = o.metadata.deletionTimestamp ? 'Terminating' : (strAt(st.reason) ?? strAt(st.phase) ?? 'Unknown');
      return [o.metadata.name, `${ready}/${arr(spec.containers).length}`, phase, String(restarts),
        age(o.metadata.creationTimestamp, now), strAt(st.podIP) ?? '<none>', strAt(spec.nodeName) ?? '<none>'];
    },
  },
  Node: {
    columns: [NAME_COL, col('Status'), col('Roles'), AGE_COL, col('Version'), col('Internal-IP', 'string', 1)],
    cells: (o, now) => {
      const st = objAt(o.status);
      const ready = arr(st.conditions).find((c) => c.type === 'Ready');
      const status = ready === undefined ? 'Unknown' : ready.status === 'True' ? 'Ready' : 'NotReady';
      const roles = Object.keys(o.metadata.labels ?? {})
        .filter((k) => k.startsWith('node-role.kubernetes.io/'))
        .map((k) => k.slice('node-role.kubernetes.io/'.length));
      const ip = arr(st.addresses).find((a) => a.type === 'InternalIP');
      return [o.metadata.name, status, roles.length ? roles.join(',') : '<none>', age(o.metadata.creationTimestamp, now),
        strAt(objAt(st.nodeInfo).kubeletVersion) ?? '', strAt(ip?.address) ?? '<none>'];
    },
  },
  Service: {
    columns: [NAME_COL, col('Type'), col('Cluster-IP'), col('External-IP'), col('Port(s)'), AGE_COL, col('Selector', 'string', 1)],
    cells: (o, now) => {
      const s = objAt(o.spec);
      const ports = arr(s.ports).map((p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ''}/${String(p.protocol ?? 'TCP')}`);
      const sel = Object.entries(objAt(s.selector)).map(([k, v]) => `${k}=${String(v)}`);
      return [o.metadata.name, s.type ?? 'ClusterIP', s.clusterIP ?? '<none>', '<none>', ports.length ? ports.join(',') : '<none>',
        age(o.metadata.creationTimestamp, now), sel.length ? sel.join(',') : '<none>'];
    },
  },
  NetworkPolicy: {
    columns: [NAME_COL, col('Pod-Selector'), AGE_COL],
    cells: (o, now) => [o.metadata.name, selectorString(objAt(o.spec).podSelector), age(o.metadata.creationTimestamp, now)],
  },
  EndpointSlice: {
    columns: [NAME_COL, col('AddressType'), col('Ports'), col('Endpoints'), AGE_COL],
    cells: (o, now) => {
      const ports = arr(o.ports).map((p) => String(p.port ?? '<unset>'));
      const addrs = arr(o.endpoints).flatMap((e) => (Array.isArray(e.addresses) ? e.addresses.map(String) : []));
      return [o.metadata.name, o.addressType ?? '', ports.length ? ports.join(',') : '<unset>',
        addrs.length ? addrs.join(',') : '<unset>', age(o.metadata.creationTimestamp, now)];
    },
  },
  ConfigMap: {
    columns: [NAME_COL, col('Data', 'integer'), AGE_COL],
    cells: (o, now) => [o.metadata.name, Object.keys(objAt(o.data)).length + Object.keys(objAt(o.binaryData)).length,
      age(o.metadata.creationTimestamp, now)],
  },
  Event: {
    columns: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message'), NAME_COL],
    cells: (o, now) => {
      const io = objAt(o.involvedObject);
      return [age(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp, now), o.type ?? '', o.reason ?? '',
        `${String(io.kind ?? '').toLowerCase()}/${String(io.name ?? '')}`, o.message ?? '', o.metadata.name];
    },
  },
  Lease: {
    columns: [NAME_COL, col('Holder'), AGE_COL],
    cells: (o, now) => [o.metadata.name, objAt(o.spec).holderIdentity ?? '', age(o.metadata.creationTimestamp, now)],
  },
  CustomResourceDefinition: {
    columns: [NAME_COL, col('Created At', 'date')],
    cells: (o) => [o.metadata.name, o.metadata.creationTimestamp ?? null],
  },
};

function printerFor(t: ResourceType): Printer {
  if (!t.custom) {
    const p = BUILTIN[t.kind];
    if (p) return p;
  }
  const custom = t.printerColumns ?? [];
  if (custom.length === 0) {
    return { columns: [NAME_COL, AGE_COL], cells: (o, now) => [o.metadata.name, age(o.metadata.creationTimestamp, now)] };
  }
  return {
    columns: [NAME_COL, ...custom.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description ?? '',
      priority: c.priority ?? 0,
    }))],
    cells: (o, now) => [o.metadata.name, ...custom.map((c) => cellFor(c, o, now))],
  };
}

/** Metadata-only view of an object (`PartialObjectMetadata`). */
export function partialMetadata(o: KObject): Obj {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

/** A `meta.k8s.io/v1` Table of `items`. `columns: false` omits the definitions (later watch events). */
export function toTable(t: ResourceType, items: KObject[], resourceVersion: string, include: IncludeObject, columns = true): Obj {
  const p = printerFor(t);
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columns ? p.columns : [],
    rows: items.map((o) => {
      const row: Obj = { cells: p.cells(o, now) };
      if (include === 'Metadata') row.object = partialMetadata(o);
      else if (include === 'Object') row.object = o;
      return row;
    }),
  };
}
