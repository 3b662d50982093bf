/** A handful of Prometheus metrics in text format; enough for the CNI path. */

export class Metrics {
  private readonly cniCount = new Map<string, number>();
  private readonly cniSeconds = new Map<string, number>();
  private shimCount = 0;
  private shimSeconds = 0;
  private readonly gauges: Record<string, () => number> = {};

  cni(command: string, outcome: 'ok' | 'error', ms: number): void {
    const k = `command="${command}",outcome="${outcome}"`;
    this.cniCount.set(k, (this.cniCount.get(k) ?? 0) + 1);
    this.cniSeconds.set(k, (this.cniSeconds.get(k) ?? 0) + ms / 1000);
  }

  /** The shim's own share: ms from its process start until its request left. */
  shimStartup(ms: number): void {
    this.shimCount++;
    this.shimSeconds += ms / 1000;
  }

  gauge(name: string, read: () => number): void {
    this.gauges[name] = read;
  }

  render(extra: { endpoints: number }): string {
    const lines: string[] = [
      '# HELP palisade_endpoints Local endpoints set up by the CNI.',
      '# TYPE palisade_endpoints gauge',
      `palisade_endpoints ${extra.endpoints}`,
      '# HELP palisade_cni_requests_total CNI requests handled by the agent.',
      '# TYPE palisade_cni_requests_total counter',
      ...[...this.cniCount].map(([k, v]) => `palisade_cni_requests_total{${k}} ${v}`),
      '# HELP palisade_cni_request_seconds_sum Time the agent spent on CNI requests.',
      '# TYPE palisade_cni_request_seconds_sum counter',
      ...[...this.cniSeconds].map(([k, v]) => `palisade_cni_request_seconds_sum{${k}} ${v.toFixed(6)}`),
      '# HELP palisade_cni_shim_startup_seconds Shim process start until its request reached the socket.',
      '# TYPE palisade_cni_shim_startup_seconds summary',
      `palisade_cni_shim_startup_seconds_sum ${this.shimSeconds.toFixed(6)}`,
      `palisade_cni_shim_startup_seconds_count ${this.shimCount}`,
    ];
    for (const [name, read] of Object.entries(this.gauges)) {
      lines.push(`# TYPE ${name} gauge`, `${name} ${read()}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
