/** The in-memory datapath (unprivileged tests, `--datapath memory`). */
export { MemoryDatapath, type Packet, type Tuple, type Verdict } from './datapath.ts';
