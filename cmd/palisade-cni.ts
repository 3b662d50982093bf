// palisade-cni: the CNI plugin the container runtime executes. Wiring only; see
// pkg/cni/main.ts and pkg/cni/shim.ts. bin/palisade-cni runs the single-file bundle
// dist/palisade-cni.mjs instead when it is current (cmd/palisade-cni-bundle.ts).
// Starts with the V8 compile cache so repeated invocations skip parsing.
import module from 'node:module';

try {
  module.enableCompileCache?.();
} catch {
  // A read-only or missing cache directory only costs speed.
}

const { main } = await import('../pkg/cni/main.ts');
await main();
