/** The Linux datapath (eBPF on pods' host-side veths). */
export { LinuxDatapath, ensureBpffs, type LinuxDatapathOptions } from './datapath.ts';
