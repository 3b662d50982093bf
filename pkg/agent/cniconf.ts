/**
 * The node's CNI configuration for Palisade, owned by the agent: written only once the
 * agent serves ADDs (until then the runtime reports NetworkReady=false and pods wait
 * rather than fail), removed on shutdown when asked. Written to a temp file in the same
 * directory and renamed, so the runtime never reads a partial file.
 */
import { rm, rename, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

export const CNI_CONF_NAME = '10-palisade.conflist';

/** The conflist: CNI 1.1.0, one `palisade` plugin pointing at the agent's socket. */
export function cniConflist(apiSocket: string): object {
  return {
    cniVersion: '1.1.0',
    name: 'palisade',
    plugins: [{ type: 'palisade', agentSocket: apiSocket }],
  };
}

/** Writes dir/10-palisade.conflist atomically; returns its path. */
export async function writeCniConf(dir: string, apiSocket: string): Promise<string> {
  const path = join(dir, CNI_CONF_NAME);
  // A dot-prefixed temp name: runtimes load only *.conf, *.conflist and *.json.
  const tmp = join(dir, `.${CNI_CONF_NAME}.${process.pid}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await writeFile(tmp, `${JSON.stringify(cniConflist(apiSocket), null, 2)}\n`, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new Error(`writing CNI config ${path}: ${(err as Error).message}`, { cause: err });
  }
  return path;
}

/** Removes dir/10-palisade.conflist; absent is fine. */
export async function removeCniConf(dir: string): Promise<void> {
  const path = join(dir, CNI_CONF_NAME);
  try {
    await rm(path, { force: true });
  } catch (err) {
    throw new Error(`removing CNI config ${path}: ${(err as Error).message}`, { cause: err });
  }
}
