/**
 * The agent's version as reported in /v1/status and PalisadeNode: the `version` of the
 * repository's package.json (shipped in the image next to dist/), found by walking up
 * from this module, so it is right from source (pkg/status) and from dist/pkg/status.
 */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function agentVersion(): string {
  if (cached) return cached;
  cached = 'unknown';
  for (let up = 2; up <= 4; up++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(`${'../'.repeat(up)}package.json`, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'palisade' && typeof pkg.version === 'string') {
        cached = pkg.version;
        break;
      }
    } catch {
      // Not at this level.
    }
  }
  return cached;
}
