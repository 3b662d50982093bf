import { describe, expect, it } from 'vitest';
import { prefixOf, substitute } from '../../../pkg/lab/substitute.ts';

const ips: Record<string, string> = { 'x/b': '10.244.1.7', 'y/a': '10.244.0.3' };
const ipOf = (p: string) => ips[p];

describe('pod reference substitution', () => {
  it('replaces ip and cidr references deep inside objects', () => {
    const obj = {
      spec: {
        egress: [{ to: [{ ipBlock: { cidr: '${cidr:x/b/16}', except: ['${ip:x/b}/32'] } }] }],
        n: 3,
        note: 'from ${ip:y/a} and ${ip:x/b}',
      },
    };
    expect(substitute(obj, ipOf)).toEqual({
      spec: {
        egress: [{ to: [{ ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.1.7/32'] } }] }],
        n: 3,
        note: 'from 10.244.0.3 and 10.244.1.7',
      },
    });
  });

  it('leaves the input untouched', () => {
    const obj = { a: ['${ip:x/b}'] };
    substitute(obj, ipOf);
    expect(obj.a[0]).toBe('${ip:x/b}');
  });

  it('fails on unknown pods and bad prefixes', () => {
    expect(() => substitute('${ip:z/q}', ipOf)).toThrow(/no pod z\/q/);
    expect(() => substitute('${cidr:x/b}', ipOf)).toThrow(/expected/);
    expect(() => substitute('${cidr:x/b/33}', ipOf)).toThrow(/0\.\.32/);
  });

  it('computes prefixes', () => {
    expect(prefixOf('10.244.1.7', 8)).toBe('10.0.0.0/8');
    expect(prefixOf('10.244.1.7', 32)).toBe('10.244.1.7/32');
    expect(prefixOf('10.244.1.7', 0)).toBe('0.0.0.0/0');
    expect(prefixOf('192.168.255.1', 17)).toBe('192.168.128.0/17');
  });
});
