// The synth-time rules for names and needs (lib/validation.ts), on the
// domain's own examples (shared/domain/src/requirement.rs' tests) and the
// edges of each rule. tests/tests/iam/cdk.rs holds the same regexes equal
// to the Rust parser itself.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { NAME, requirementError } from '../lib/validation';

const long = (n: number) => 'a'.repeat(n);

describe('service and consumer names', () => {
  it('accept a letter, then letters, digits, - and _, up to 64', () => {
    for (const name of ['a', 'orders', 'hello-world_2', 'Z9', long(64)]) assert.ok(NAME.test(name), name);
  });
  it('refuse anything else', () => {
    for (const name of ['', '9orders', '-x', '_x', 'or ders', 'orders#1', 'ördner', long(65), 'orders\n']) {
      assert.ok(!NAME.test(name), JSON.stringify(name));
    }
  });
});

describe('needs (one requirement each)', () => {
  const valid = [
    'orders',
    'orders^1',
    'payments==1.2.0',
    'helloworld==1.0',
    'users^1.2',
    'users~1.2',
    'users>=1.2',
    'users>=1.2,<2',
    'users>=1.2,<2,<=1.9.9',
    'orders>=2.0.0-rc.1',
    'orders==2.0.0-rc.1',
    'orders==1.2.0+build.5',
    'orders==1.2-beta.1',
    'orders,>=1',
    'orders>=1.x',
    'orders>=1.*.*',
    'orders<1.X',
    'orders^0',
    'orders^18446744073709551615',
    'orders^9999999999999999999',
    'orders==1.2.3-0.a-b.0c',
    long(64),
    `orders==1.2-${long(58)}`,
  ];
  const invalid: Array<[string, RegExp]> = [
    ['orders^^1', /not a version range/],
    ['', /must start with a service name/],
    ['9orders', /must start with a service name/],
    ['>=1.2', /must start with a service name/],
    [long(65), /longer than 64/],
    ['orders=1.2', /use `==`/],
    ['orders@1.2', /must start with one of/],
    ['orders==banana', /not a version/],
    ['orders==1.2.3.4', /not a version/],
    ['orders==01.2.3', /not a version/],
    ['orders==1.2.3-', /not a version/],
    ['orders==1.2.3-01', /not a version/],
    ['orders==1.2.3-a..b', /not a version/],
    ['orders==1', /not a version/],
    ['orders,<2x', /not a version range/],
    ['orders>=1.x.2', /not a version range/],
    ['orders>=1.2-rc.1', /not a version range/],
    ['orders^18446744073709551616', /not a version range/],
    ['orders^99999999999999999999', /not a version range/],
    ['orders~>1.2', /not a version range/],
    ['orders>==1', /not a version range/],
    ['orders,,>=1', /empty part/],
    ['orders,', /empty part/],
    ['orders,payments', /more than one requirement/],
    ['orders, >=1', /whitespace/],
    ['orders >=1', /whitespace/],
    [`orders==${long(1)}.${'1'.repeat(63)}`, /longer than 64/],
    [`orders==1.2-${long(60)}`, /once read as MAJOR.MINOR.PATCH/],
    [`orders>=1.2.3-${long(125)}`, /too long/],
  ];
  for (const need of valid) {
    it(`accept ${need.length > 40 ? need.slice(0, 40) + '…' : need}`, () => assert.equal(requirementError(need), undefined));
  }
  for (const [need, why] of invalid) {
    it(`refuse ${JSON.stringify(need.length > 40 ? need.slice(0, 40) + '…' : need)}`, () => {
      const error = requirementError(need);
      assert.ok(error !== undefined && why.test(error), `${need}: ${error}`);
    });
  }
});
