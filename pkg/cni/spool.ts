/**
 * The pending-DEL spool: when the agent is unreachable, the shim records a DEL as one
 * small JSON file (the whole request) and reports success, so pod teardown never waits
 * on the agent; the agent completes every recorded DEL when it returns. Files are named
 * after the attachment (container id + ifname), written to a temp name, fsynced and
 * renamed, so a reader never sees half a record. Node builtins only (the shim loads it).
 */
import { createHash } from 'node:crypto';
import {
  closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { CniRequest } from './request.ts';

export function spoolFileName(containerId: string, ifName: string): string {
  const h = createHash('sha256').update(`${containerId}/${ifName}`).digest('hex').slice(0, 24);
  return `${h}.json`;
}

/** Records a DEL; replaces an earlier record of the same attachment. */
export function spoolDel(dir: string, req: CniRequest): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, spoolFileName(req.containerId, req.ifName));
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify({ recordedAt: new Date().toISOString(), request: req }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return file;
}

export interface SpooledDel {
  file: string;
  request: CniRequest;
}

/**
 * Lists recorded DELs. Unreadable or malformed records are returned in `bad` (the
 * caller logs and removes them); leftover temp files are ignored.
 */
export function listSpooledDels(dir: string): { dels: SpooledDel[]; bad: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { dels: [], bad: [] };
    throw err;
  }
  const dels: SpooledDel[] = [];
  const bad: string[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith('.json')) continue;
    const file = join(dir, name);
    try {
      const rec = JSON.parse(readFileSync(file, 'utf8')) as { request?: CniRequest };
      if (!rec.request || rec.request.command !== 'DEL') throw new Error('not a DEL record');
      dels.push({ file, request: rec.request });
    } catch {
      bad.push(file);
    }
  }
  return { dels, bad };
}

export function removeSpooled(file: string): void {
  rmSync(file, { force: true });
}
