/**
 * Crash-safe small files: write a temp file, fsync it, rename it over the target. A
 * reader sees the old or the new content, never a mix or an empty file, also after a
 * power loss.
 *
 * One fsync, not two: the directory is not fsynced after the rename. What callers keep
 * here (IPAM leases, endpoint records) describes kernel objects that live exactly as
 * long as the running kernel (veths, network namespaces, bpffs pins). A power loss that
 * drops the rename leaves the previous version, and the reboot drops the pods it
 * describes too; the agent's restore reconciles both. An agent crash loses nothing:
 * the rename is in the page cache. The data fsync stays so that a rename that did
 * survive never names an unwritten file (which the loaders refuse).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

let seq = 0;
/** Directories already created by this process (saves a mkdir per write). */
const made = new Set<string>();

export interface WriteOptions {
  /**
   * fsync the data before the rename (default true). Without it a power loss may leave
   * an empty file under the new name on some file systems; only for state whose readers
   * tolerate that (they skip an unreadable record) and which a reboot invalidates anyway.
   */
  fsync?: boolean;
}

export async function writeFileAtomic(file: string, data: string, opts: WriteOptions = {}): Promise<void> {
  const dir = dirname(file);
  if (!made.has(dir)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    made.add(dir);
  }
  const tmp = `${file}.${process.pid}.${seq++}.tmp`;
  let fh;
  try {
    fh = await open(tmp, 'w', 0o600);
  } catch (err) {
    // The directory may have been removed behind our back: make it again, once.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    made.delete(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    made.add(dir);
    fh = await open(tmp, 'w', 0o600);
  }
  try {
    await fh.writeFile(data);
    if (opts.fsync !== false) await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Reads a JSON file; `undefined` when it does not exist. */
export async function readJsonFile<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`reading ${file}: ${(err as Error).message}`, { cause: err });
  }
}
