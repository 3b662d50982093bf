/** `kubectl palisade` argument parsing and table rendering. */
import { describe, expect, it } from 'vitest';
import { UsageError, parseArgs, parseDuration } from '../../../pkg/inspect/args.ts';
import { flowRow, formatPeer, table, traceText } from '../../../pkg/inspect/render.ts';
import type { FlowRecord } from '../../../pkg/flow/types.ts';

describe('arguments', () => {
  it('global flags anywhere, in every kubectl form', () => {
    expect(parseArgs(['--kubeconfig', 'k', 'status', '--context=c', '-ojson'])).toEqual({
      global: { kubeconfig: 'k', context: 'c', output: 'json', agentNamespace: 'kube-system', requestTimeoutMs: 30_000 },
      command: { name: 'status' },
    });
    expect(parseArgs(['status', '-o', 'table', '--agent-namespace', 'palisade', '--request-timeout', '5s']).global)
      .toMatchObject({ output: 'table', agentNamespace: 'palisade', requestTimeoutMs: 5000 });
    expect(parseArgs(['status', '-o=json']).global.output).toBe('json');
  });

  it('subcommands and their flags', () => {
    expect(parseArgs(['endpoints', '-n', 'x']).command).toEqual({ name: 'endpoints', namespace: 'x', allNamespaces: false });
    expect(parseArgs(['endpoints', '-nx']).command).toEqual({ name: 'endpoints', namespace: 'x', allNamespaces: false });
    expect(parseArgs(['endpoints', '-A']).command).toEqual({ name: 'endpoints', allNamespaces: true });
    expect(parseArgs(['policy', 'x/a']).command).toEqual({ name: 'policy', pod: 'x/a' });
    expect(parseArgs(['trace', 'x/a', 'y/b', '--port', '80']).command).toEqual({ name: 'trace', src: 'x/a', dst: 'y/b', port: 80, protocol: 'TCP' });
    expect(parseArgs(['trace', '192.0.2.1', 'y/b', '--port=53', '--protocol', 'udp']).command)
      .toEqual({ name: 'trace', src: '192.0.2.1', dst: 'y/b', port: 53, protocol: 'UDP' });
    expect(parseArgs(['observe', '--verdict', 'dropped', '--pod', 'x/a', '--since', '1h30m', '--limit', '5', '-f']).command)
      .toEqual({ name: 'observe', verdict: 'dropped', pod: 'x/a', sinceMs: 5_400_000, limit: 5, follow: true });
    expect(parseArgs([]).command).toEqual({ name: 'help' });
    expect(parseArgs(['trace', '--help']).command).toEqual({ name: 'help' });
  });

  it.each([
    [['bogus'], 'unknown command "bogus"'],
    [['status', 'extra'], '"status" takes no arguments'],
    [['status', '--port', '1'], 'unknown flag --port for "status"'],
    [['--verdict', 'dropped', 'observe'], 'unknown flag --verdict'],
    [['endpoints', '-n', 'x', '-A'], '-n and -A exclude each other'],
    [['policy', 'a'], 'the pod must be NAMESPACE/POD, got "a"'],
    [['policy'], 'usage: kubectl palisade policy NAMESPACE/POD'],
    [['trace', 'x/a', 'y/b'], 'trace needs --port'],
    [['trace', 'x/a', 'y/b', '--port', '0'], '--port must be an integer in 1..65535'],
    [['trace', 'x/a', 'y/b', '--port', '80', '--protocol', 'ICMP'], '--protocol must be TCP, UDP or SCTP'],
    [['observe', '--verdict', 'lost'], '--verdict must be one of allowed, dropped, redirected, denied'],
    [['observe', '--since', '5'], 'invalid duration "5"'],
    [['observe', '--since'], '--since needs a value'],
    [['observe', '--follow=1'], '--follow takes no value'],
    [['status', '-o', 'yaml'], '--output must be table or json'],
  ])('%j is a usage error: %s', (argv, msg) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(msg);
  });

  it('durations as Go writes them', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('2h5m3s')).toBe(7_503_000);
    expect(() => parseDuration('')).toThrow(UsageError);
    expect(() => parseDuration('5x')).toThrow(UsageError);
  });
});

describe('rendering', () => {
  it('tables: columns as wide as their widest cell, <none> for empty cells, no trailing spaces', () => {
    expect(table(['NAME', 'VALUE', 'NOTE'], [['a', '1', ''], ['longer', '', 'x y']])).toBe(
      'NAME     VALUE    NOTE\n' +
      'a        1        <none>\n' +
      'longer   <none>   x y\n',
    );
    expect(table(['A'], [])).toBe('A\n');
  });

  const rec: FlowRecord = {
    time: Date.UTC(2026, 10, 27, 21, 3, 4, 56), node: 'n0', verdict: 'denied', reason: 'http-denied', direction: 'ingress',
    protocol: 'TCP', ruleId: 7, policy: 'PalisadeNetworkPolicy:x/api',
    src: { ip: '10.244.1.5', port: 40000, namespace: 'y', pod: 'c' }, dst: { ip: '10.244.0.9', port: 8080 },
    http: { method: 'POST', path: '/admin', status: 403 },
  };

  it('flow rows: UTC time, pods or addresses, the HTTP request, reason and policy', () => {
    expect(flowRow(rec)).toEqual([
      '21:03:04.056', 'n0', 'denied', 'ingress', 'y/c', '10.244.0.9:8080', 'TCP POST /admin 403', 'http-denied', 'PalisadeNetworkPolicy:x/api',
    ]);
    expect(formatPeer({ ip: '1.2.3.4', port: 0 }, true)).toBe('1.2.3.4');
  });

  it('trace text: verdict line, deciding policy with its rule, one row and explanation per step', () => {
    const text = traceText({
      src: 'y/a', dst: 'x/a', srcIp: '10.0.1.2', dstIp: '10.0.0.2', protocol: 'TCP', port: 80, verdict: 'allowed',
      decidedBy: { direction: 'ingress', pod: 'x/a', node: 'n0', allowed: true, reason: 'allowed', policy: 'NetworkPolicy:x/allow', ruleIndex: 1, isolatedBy: ['NetworkPolicy:x/allow'], l7: false, explanation: 'allowed by NetworkPolicy:x/allow ingress[1]: peer 300 (...)' },
      steps: [
        { direction: 'egress', pod: 'y/a', node: 'n1', allowed: true, reason: 'not-enforced', policy: 'none', isolatedBy: [], l7: false, explanation: 'allowed: no policy isolates endpoint 1 for egress' },
        { direction: 'ingress', pod: 'x/a', node: 'n0', allowed: true, reason: 'allowed', policy: 'NetworkPolicy:x/allow', ruleIndex: 1, isolatedBy: ['NetworkPolicy:x/allow'], l7: false, explanation: 'allowed by NetworkPolicy:x/allow ingress[1]: peer 300 (...)' },
      ],
    });
    expect(text).toBe(
      'ALLOWED: y/a (10.0.1.2) -> x/a (10.0.0.2) TCP/80\n' +
      'decided by: NetworkPolicy:x/allow ingress[1]\n\n' +
      'STEP             NODE   VERDICT   POLICY                  RULE     ISOLATED-BY\n' +
      'egress of y/a    n1     allowed   none                    <none>   <none>\n' +
      'ingress of x/a   n0     allowed   NetworkPolicy:x/allow   1        NetworkPolicy:x/allow\n\n' +
      'egress: allowed: no policy isolates endpoint 1 for egress\n' +
      'ingress: allowed by NetworkPolicy:x/allow ingress[1]: peer 300 (...)\n',
    );
  });
});
