/** The agent's --l7-proxy-port option (chart value l7ProxyPort). */
import { describe, expect, test } from 'vitest';
import { DEFAULT_L7_PROXY_PORT, parseAgentArgs, UsageError } from '../../../pkg/agent/options.ts';

const base = ['--standalone', '--node-name', 'n1', '--pod-cidr', '10.244.0.0/24'];

describe('--l7-proxy-port', () => {
  test('defaults to the chart default', () => {
    expect(parseAgentArgs(base).l7ProxyPort).toBe(DEFAULT_L7_PROXY_PORT);
    expect(DEFAULT_L7_PROXY_PORT).toBe(15001);
  });
  test('0 disables the proxy', () => {
    expect(parseAgentArgs([...base, '--l7-proxy-port', '0']).l7ProxyPort).toBe(0);
  });
  test('a port outside 0..65535 is a usage error', () => {
    expect(() => parseAgentArgs([...base, '--l7-proxy-port', '70000'])).toThrow(UsageError);
    expect(() => parseAgentArgs([...base, '--l7-proxy-port', 'x'])).toThrow(/--l7-proxy-port must be an integer/);
  });
});
