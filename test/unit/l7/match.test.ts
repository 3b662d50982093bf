/** HTTP rule matching (pkg/l7/match.ts): the tables H7's decider relies on. */
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from 'vitest';
import { matchAnyHttpRule, matchHttpRule, splitHost, validateHttpRules } from '../../../pkg/l7/match.ts';
import type { RequestInfo } from '../../../pkg/l7/types.ts';
import type { HttpRule } from '../../../pkg/policy/snapshot.ts';

function req(method: string, path: string, host?: string, headers: Record<string, string[]> = {}): RequestInfo {
  const h = new Map(Object.entries(headers));
  if (host !== undefined) h.set('host', [host]);
  return host === undefined ? { method, path, headers: h } : { method, path, host, headers: h };
}

const cases: [string, HttpRule, RequestInfo, boolean][] = [
  ['empty rule matches anything', {}, req('DELETE', '/x'), true],
  ['method regex anchored: GET matches GET', { method: 'GET' }, req('GET', '/'), true],
  ['method regex anchored: GET does not match GETX', { method: 'GET' }, req('GETX', '/'), false],
  ['method regex anchored: ET does not match GET', { method: 'ET' }, req('GET', '/'), false],
  ['method alternation', { method: 'GET|HEAD' }, req('HEAD', '/'), true],
  ['method alternation stays anchored', { method: 'GET|HEAD' }, req('XHEADX', '/'), false],
  ['method is case-sensitive', { method: 'get' }, req('GET', '/'), false],
  ['path exact', { path: '/public' }, req('GET', '/public'), true],
  ['path anchored at the end', { path: '/public' }, req('GET', '/public/x'), false],
  ['path anchored at the start', { path: 'public' }, req('GET', '/public'), false],
  ['path optional suffix', { path: '/public(/.*)?' }, req('GET', '/public/a/b'), true],
  ['path optional suffix, no prefix match', { path: '/public(/.*)?' }, req('GET', '/publicity'), false],
  ['path ignores the query string', { path: '/public(/.*)?' }, req('GET', '/public?x=1'), true],
  ['path cannot match the query', { path: '/public\\?x=1' }, req('GET', '/public?x=1'), false],
  ['admin denied by a public rule', { path: '/public(/.*)?' }, req('GET', '/admin'), false],
  ['method and path both needed', { method: 'GET', path: '/public' }, req('POST', '/public'), false],
  ['host exact', { host: 'api.example.com' }, req('GET', '/', 'api.example.com'), true],
  ['host case-insensitive', { host: 'API.example.com' }, req('GET', '/', 'api.EXAMPLE.com'), true],
  ['host without port ignores the request port', { host: 'api.example.com' }, req('GET', '/', 'api.example.com:8080'), true],
  ['host with port needs that port', { host: 'api.example.com:8080' }, req('GET', '/', 'api.example.com:8080'), true],
  ['host with port, other port', { host: 'api.example.com:8080' }, req('GET', '/', 'api.example.com:80'), false],
  ['host with port, no port in request', { host: 'api.example.com:8080' }, req('GET', '/', 'api.example.com'), false],
  ['host is not a regex', { host: 'api.example.com' }, req('GET', '/', 'apiXexample.com'), false],
  ['host is not a suffix match', { host: 'example.com' }, req('GET', '/', 'evil-example.com'), false],
  ['host rule, no Host header', { host: 'api.example.com' }, req('GET', '/'), false],
  ['ipv6 host with port', { host: '[::1]' }, req('GET', '/', '[::1]:80'), true],
  ['header presence', { headers: [{ name: 'X-Token' }] }, req('GET', '/', undefined, { 'x-token': [''] }), true],
  ['header absent', { headers: [{ name: 'x-token' }] }, req('GET', '/'), false],
  ['header value exact', { headers: [{ name: 'x-token', value: 's3cret' }] }, req('GET', '/', undefined, { 'x-token': ['s3cret'] }), true],
  ['header value wrong', { headers: [{ name: 'x-token', value: 's3cret' }] }, req('GET', '/', undefined, { 'x-token': ['s3cret2'] }), false],
  ['header value is case-sensitive', { headers: [{ name: 'x-token', value: 's3cret' }] }, req('GET', '/', undefined, { 'x-token': ['S3CRET'] }), false],
  ['header value on any field line', { headers: [{ name: 'x-token', value: 'b' }] }, req('GET', '/', undefined, { 'x-token': ['a', 'b'] }), true],
  ['every header entry must match', { headers: [{ name: 'a', value: '1' }, { name: 'b' }] }, req('GET', '/', undefined, { a: ['1'] }), false],
  ['all fields together', { method: 'GET', path: '/p', host: 'h', headers: [{ name: 'a' }] }, req('GET', '/p', 'h', { a: ['x'] }), true],
  ['invalid regex never matches', { method: '(' }, req('(', '/'), false],
  ['unbalanced ) cannot escape the anchors', { path: 'a)|(.*' }, req('GET', '/anything'), false],
];

describe('matchHttpRule', () => {
  test.each(cases)('%s', (_name, rule, r, want) => {
    expect(matchHttpRule(rule, r)).toBe(want);
  });

  test('a rule object is compiled once and keeps matching the same way', () => {
    const rule: HttpRule = { path: '/a.*' };
    for (let i = 0; i < 3; i++) expect(matchHttpRule(rule, req('GET', '/abc'))).toBe(true);
    expect(matchHttpRule(rule, req('GET', '/b'))).toBe(false);
  });

  test('any rule of a list (the union of a port\'s http rules)', () => {
    const rules: HttpRule[] = [{ method: 'GET', path: '/public' }, { method: 'POST', path: '/submit' }];
    expect(matchAnyHttpRule(rules, req('POST', '/submit'))).toBe(true);
    expect(matchAnyHttpRule(rules, req('POST', '/public'))).toBe(false);
    expect(matchAnyHttpRule([], req('GET', '/'))).toBe(false);
  });
});

describe('validateHttpRules', () => {
  test('valid rules have no problems', () => {
    expect(validateHttpRules([{ method: 'GET|POST', path: '/x(/.*)?', host: 'a', headers: [{ name: 'x' }] }])).toEqual([]);
  });

  test('names the rule and field of an invalid regex', () => {
    const problems = validateHttpRules([{ method: 'GET' }, { path: '/a(' }], 'spec.ingress[0].ports[1].http');
    expect(problems).toHaveLength(1);
    expect(problems[0]!.field).toBe('spec.ingress[0].ports[1].http[1].path');
    expect(problems[0]!.message).toMatch(/^invalid regular expression/);
  });

  test('an unbalanced ) is invalid even though the anchored form would compile', () => {
    expect(validateHttpRules([{ path: 'a)|(b' }])[0]?.field).toBe('http[0].path');
  });

  test('backreferences and lookaheads are refused: rules must match in linear time', () => {
    const problems = validateHttpRules([{ path: '/(a)\\1' }, { method: '(?=G)GET' }, { path: '/x(?!y)' }]);
    expect(problems.map((p) => p.field)).toEqual(['http[0].path', 'http[1].method', 'http[2].path']);
    expect(problems[0]!.message).toMatch(/linear time/);
    // A refused rule never matches (fail closed).
    expect(matchHttpRule({ path: '/(a)\\1' }, req('GET', '/aa'))).toBe(false);
  });

  test('a pattern that backtracks exponentially still answers on a long path', async () => {
    // On a backtracking engine `/(a+)+` against 60 a's and a b takes about 2^60 steps. The
    // match runs in a worker so that such a hang fails this test instead of the run.
    const url = new URL('../../../pkg/l7/match.ts', import.meta.url).href;
    const worker = new Worker(`
      const { parentPort } = await import('node:worker_threads');
      const { matchHttpRule, validateHttpRules } = await import(${JSON.stringify(url)});
      const req = (path) => ({ method: 'GET', path, headers: new Map() });
      const rule = { path: '/(a+)+' };
      parentPort.postMessage([validateHttpRules([rule]).length,
        matchHttpRule(rule, req('/' + 'a'.repeat(60) + 'b')), matchHttpRule(rule, req('/' + 'a'.repeat(60)))]);
    `, { eval: true });
    try {
      const answer = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        setTimeout(() => reject(new Error('matching did not finish: the rule backtracked')), 20_000).unref();
      });
      expect(answer).toEqual([0, false, true]);
    } finally {
      await worker.terminate();
    }
  }, 30_000);

  test('bad header entries and empty hosts are reported', () => {
    const problems = validateHttpRules([{ host: '', headers: [{ name: '' }] } as HttpRule]);
    expect(problems.map((p) => p.field)).toEqual(['http[0].host', 'http[0].headers[0]']);
  });
});

describe('splitHost', () => {
  test.each([
    ['a.b', { name: 'a.b' }],
    ['A.b:80', { name: 'a.b', port: '80' }],
    ['[::1]:8080', { name: '[::1]', port: '8080' }],
    ['[::1]', { name: '[::1]' }],
  ])('%s', (h, want) => expect(splitHost(h)).toEqual(want));
});
