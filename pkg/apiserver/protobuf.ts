/**
 * Decoding of the Kubernetes protobuf envelope for the few request bodies kubectl sends
 * as protobuf: `kubectl create namespace|configmap|service` post their object with
 * `Content-Type: application/vnd.kubernetes.protobuf` and do not fall back to JSON on 415.
 *
 * Envelope: the magic `k8s\0`, then a runtime.Unknown message {typeMeta(1){apiVersion(1),
 * kind(2)}, raw(2), contentEncoding(3), contentType(4)} whose `raw` is the object. The
 * field numbers below are those of k8s.io/api core/v1 and apimachinery meta/v1, limited to
 * the fields kubectl's generators fill in (checked against kubectl 1.32's bodies). Zero
 * values are dropped, as Go's JSON encoding with omitempty drops them. A field this table
 * does not know fails the request with 415 instead of being lost silently.
 */
import { ApiError } from './errors.ts';
import type { Obj } from './json.ts';

type Kind = 'string' | 'int' | 'bool' | 'bytes' | 'map' | 'mapBytes' | 'intOrString' | 'time' | 'skip' | Schema;

interface FieldSpec {
  name: string;
  kind: Kind;
  repeated?: boolean;
}

interface Schema {
  [field: number]: FieldSpec;
}

const f = (name: string, kind: Kind, repeated = false): FieldSpec => ({ name, kind, repeated });

const OWNER_REFERENCE: Schema = {
  1: f('kind', 'string'),
  3: f('name', 'string'),
  4: f('uid', 'string'),
  5: f('apiVersion', 'string'),
  6: f('controller', 'bool'),
  7: f('blockOwnerDeletion', 'bool'),
};

const OBJECT_META: Schema = {
  1: f('name', 'string'),
  2: f('generateName', 'string'),
  3: f('namespace', 'string'),
  4: f('selfLink', 'string'),
  5: f('uid', 'string'),
  6: f('resourceVersion', 'string'),
  7: f('generation', 'int'),
  8: f('creationTimestamp', 'time'),
  9: f('deletionTimestamp', 'time'),
  10: f('deletionGracePeriodSeconds', 'int'),
  11: f('labels', 'map'),
  12: f('annotations', 'map'),
  13: f('ownerReferences', OWNER_REFERENCE, true),
  14: f('finalizers', 'string', true),
  17: f('managedFields', 'skip', true),
};

const SERVICE_PORT: Schema = {
  1: f('name', 'string'),
  2: f('protocol', 'string'),
  3: f('port', 'int'),
  4: f('targetPort', 'intOrString'),
  5: f('nodePort', 'int'),
};

const SERVICE_SPEC: Schema = {
  1: f('ports', SERVICE_PORT, true),
  2: f('selector', 'map'),
  3: f('clusterIP', 'string'),
  4: f('type', 'string'),
  7: f('sessionAffinity', 'string'),
  8: f('loadBalancerIP', 'string'),
  10: f('externalName', 'string'),
  11: f('externalTrafficPolicy', 'string'),
  12: f('healthCheckNodePort', 'int'),
  13: f('publishNotReadyAddresses', 'bool'),
};

/** Object schemas by apiVersion/kind. Status is skipped: the server resets it on create. */
const OBJECTS: Record<string, Schema> = {
  'v1/Namespace': { 1: f('metadata', OBJECT_META), 2: f('spec', { 1: f('finalizers', 'string', true) }), 3: f('status', 'skip') },
  'v1/ConfigMap': { 1: f('metadata', OBJECT_META), 2: f('data', 'map'), 3: f('binaryData', 'mapBytes'), 4: f('immutable', 'bool') },
  'v1/Service': { 1: f('metadata', OBJECT_META), 2: f('spec', SERVICE_SPEC), 3: f('status', 'skip') },
};

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

function unsupported(why: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `protobuf body not supported by the lab API server (${why}); send application/json`);
}

class Reader {
  pos = 0;
  readonly buf: Buffer;
  readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw unsupported('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw unsupported('varint too long');
  }

  bytes(): Buffer {
    const n = this.varint();
    if (this.pos + n > this.end) throw unsupported('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw unsupported(`wire type ${wire}`);
  }
}

/** Decodes the fields of one message as [field number, wire type, value reader]. */
function* fields(buf: Buffer): Generator<{ num: number; wire: number; r: Reader }> {
  const r = new Reader(buf);
  while (!r.done()) {
    const tag = r.varint();
    yield { num: Math.floor(tag / 8), wire: tag & 7, r };
  }
}

function mapEntry(buf: Buffer, bytesValue: boolean): [string, string] {
  let key = '';
  let value = '';
  for (const { num, wire, r } of fields(buf)) {
    if (wire !== 2) throw unsupported('map entry');
    const b = r.bytes();
    if (num === 1) key = b.toString('utf8');
    else if (num === 2) value = bytesValue ? b.toString('base64') : b.toString('utf8');
  }
  return [key, value];
}

function decodeMessage(buf: Buffer, schema: Schema, path: string): Obj {
  const out: Obj = {};
  for (const { num, wire, r } of fields(buf)) {
    const spec = schema[num];
    if (!spec) throw unsupported(`unknown field ${num} in ${path || 'object'}`);
    if (spec.kind === 'skip') {
      r.skip(wire);
      continue;
    }
    const v = decodeValue(r, wire, spec, path ? `${path}.${spec.name}` : spec.name);
    if (spec.kind === 'map' || spec.kind === 'mapBytes') {
      const [k, val] = v as [string, string];
      out[spec.name] = { ...((out[spec.name] as Obj | undefined) ?? {}), [k]: val };
    } else if (spec.repeated) {
      const list = (out[spec.name] as unknown[] | undefined) ?? [];
      list.push(v);
      out[spec.name] = list;
    } else if (!isZero(v)) {
      out[spec.name] = v;
    }
  }
  return out;
}

function isZero(v: unknown): boolean {
  return v === '' || v === 0 || v === false || v === undefined || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);
}

function decodeValue(r: Reader, wire: number, spec: FieldSpec, path: string): unknown {
  const k = spec.kind;
  if (k === 'int' || k === 'bool') {
    if (wire !== 0) throw unsupported(`${path}: unexpected wire type`);
    const n = r.varint();
    return k === 'bool' ? n !== 0 : n;
  }
  if (wire !== 2) throw unsupported(`${path}: unexpected wire type`);
  const b = r.bytes();
  switch (k) {
    case 'string':
      return b.toString('utf8');
    case 'bytes':
      return b.toString('base64');
    case 'map':
      return mapEntry(b, false);
    case 'mapBytes':
      return mapEntry(b, true);
    case 'intOrString': {
      const m = decodeMessage(b, { 1: f('type', 'int'), 2: f('intVal', 'int'), 3: f('strVal', 'string') }, path);
      return m.type === 1 ? (m.strVal ?? '') : (m.intVal ?? 0);
    }
    case 'time': {
      const m = decodeMessage(b, { 1: f('seconds', 'int'), 2: f('nanos', 'int') }, path);
      return m.seconds ? new Date(Number(m.seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
    }
    case 'skip':
      return undefined;
    default:
      return decodeMessage(b, k as Schema, path);
  }
}

/** Decodes a protobuf request body into the JSON form of the object; 415 when it cannot. */
export function decodeProtobufObject(body: Buffer): Obj {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw unsupported('missing k8s envelope');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer | undefined;
  for (const { num, wire, r } of fields(body.subarray(4))) {
    if (wire !== 2) {
      r.skip(wire);
      continue;
    }
    const b = r.bytes();
    if (num === 1) {
      for (const tm of fields(b)) {
        const s = tm.r.bytes().toString('utf8');
        if (tm.num === 1) apiVersion = s;
        else if (tm.num === 2) kind = s;
      }
    } else if (num === 2) raw = b;
    else if ((num === 3 || num === 4) && b.length > 0) throw unsupported('encoded content');
  }
  const schema = OBJECTS[`${apiVersion}/${kind}`];
  if (!schema || !raw) throw unsupported(`kind ${apiVersion}/${kind}`);
  return { apiVersion, kind, ...decodeMessage(raw, schema, '') };
}
