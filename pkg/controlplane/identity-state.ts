/**
 * Persistence of the compiler's identity allocators, so that identity numbers survive an
 * agent restart: the restarted agent compiles the same numbers as the datapath already
 * holds, and its first reconcile is a no-op diff (nothing re-keyed under established
 * flows). Written atomically (temp file + rename) after realized reconciles, at most
 * once per `minIntervalMs`, and on stop.
 *
 * A missing file means a first start. An unreadable or corrupt file is logged and
 * ignored: fresh numbers are still correct, the first reconcile just rewrites entries.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CidrIdentityAllocator, LabelIdentityAllocator } from '../identity/allocator.ts';
import { errorMessage, type Logger } from '../k8s/clock.ts';

export interface IdentityState {
  labelIdentities: LabelIdentityAllocator;
  cidrIdentities: CidrIdentityAllocator;
}

interface FileJSON {
  version: 1;
  labelIdentities: unknown;
  cidrIdentities: unknown;
}

/** Loads the allocators from `path`; fresh ones when it is missing or unusable. */
export async function loadIdentityState(path: string, log: Logger): Promise<IdentityState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      log.warn('reading identity state failed; starting with fresh identities', { path, error: errorMessage(err) });
    }
    return { labelIdentities: new LabelIdentityAllocator(), cidrIdentities: new CidrIdentityAllocator() };
  }
  try {
    const j = JSON.parse(text) as FileJSON;
    if (j?.version !== 1) throw new Error(`unknown version ${String(j?.version)}`);
    return {
      labelIdentities: LabelIdentityAllocator.fromJSON(j.labelIdentities),
      cidrIdentities: CidrIdentityAllocator.fromJSON(j.cidrIdentities),
    };
  } catch (err) {
    log.warn('identity state is corrupt; starting with fresh identities', { path, error: errorMessage(err) });
    return { labelIdentities: new LabelIdentityAllocator(), cidrIdentities: new CidrIdentityAllocator() };
  }
}

/** Writes the allocators atomically. */
export async function saveIdentityState(path: string, s: IdentityState): Promise<void> {
  const body: FileJSON = {
    version: 1, labelIdentities: s.labelIdentities.toJSON(), cidrIdentities: s.cidrIdentities.toJSON(),
  };
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(body), { mode: 0o600 });
  await rename(tmp, path);
}
