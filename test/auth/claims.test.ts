import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addressAllowed, parseCidrs } from '../../src/auth/methods/cidr.js';
import {
  claimAt,
  claimGroups,
  failedBoundClaim,
  globMatch,
  mappedMetadata,
  parseClaimPath,
  userClaimValue,
} from '../../src/auth/methods/claims.js';
import { PRESET_NAMES, PRESETS_MARKDOWN } from '../../src/auth/methods/presets.js';

const reference = (pattern: string, value: string) =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
      .join('.*')}$`,
    's',
  ).test(value);

test('globMatch agrees with a regular-expression reference', () => {
  const alphabet = fc.constantFrom('a', 'b', '*', '/', '.', '-');
  const text = fc.constantFrom('a', 'b', '/', '.', '-');
  fc.assert(
    fc.property(
      fc.string({ unit: alphabet, maxLength: 12 }),
      fc.string({ unit: text, maxLength: 16 }),
      (p, v) => {
        assert.equal(globMatch(p, v), reference(p, v), `${p} vs ${v}`);
      },
    ),
    { numRuns: 3000 },
  );
  assert.equal(globMatch('repo:acme/*:ref:refs/heads/main', 'repo:acme/x:ref:refs/heads/main'), true);
  assert.equal(globMatch('repo:acme/*:ref:refs/heads/main', 'repo:acme/x:ref:refs/heads/dev'), false);
  assert.equal(globMatch('*', ''), true);
  assert.equal(globMatch('', 'a'), false);
});

test('globMatch stays fast on adversarial patterns', () => {
  const start = process.hrtime.bigint();
  assert.equal(globMatch(`${'*a'.repeat(200)}b`, 'a'.repeat(5000)), false);
  assert.ok(Number(process.hrtime.bigint() - start) / 1e6 < 2000);
});

test('claim paths: `/`-separated, dots literal, ~1 and ~0 escapes', () => {
  assert.deepEqual(parseClaimPath('kubernetes.io/namespace'), ['kubernetes.io', 'namespace']);
  assert.deepEqual(parseClaimPath('/sub'), ['sub']);
  assert.deepEqual(parseClaimPath('a~1b/c~0d'), ['a/b', 'c~d']);
  for (const bad of ['', '/', 'a//b', 'a/', 'a~2', 'a~', 'a/b/c/d/e/f/g/h/i']) {
    assert.throws(() => parseClaimPath(bad), { code: 'InvalidClaimPath' }, bad);
  }
  const claims = { 'kubernetes.io': { namespace: 'ml' }, 'a/b': 1, arr: ['x'], proto: {} };
  assert.equal(claimAt(claims, ['kubernetes.io', 'namespace']), 'ml');
  assert.equal(claimAt(claims, ['a/b']), 1);
  assert.equal(claimAt(claims, ['arr', '0']), undefined, 'arrays are not indexed');
  assert.equal(claimAt(claims, ['proto', 'constructor']), undefined, 'no prototype walk');
  assert.equal(claimAt(claims, ['__proto__']), undefined);
});

test('bound claims, mappings, groups and the user claim', () => {
  const claims = { sub: 'u1', n: 5, ok: true, groups: ['a', 2, 'b'], nested: { team: 'ml' }, obj: { a: 1 } };
  assert.equal(
    failedBoundClaim(claims, { sub: ['u*'], n: ['5'], ok: ['true'], 'nested/team': ['ml'] }),
    null,
  );
  assert.equal(failedBoundClaim(claims, { sub: ['u1'], 'nested/team': ['web'] }), 'nested/team');
  assert.equal(failedBoundClaim(claims, { obj: ['*'] }), 'obj', 'objects never match, not even *');
  assert.equal(failedBoundClaim(claims, { missing: ['*'] }), 'missing');
  assert.deepEqual(mappedMetadata(claims, { sub: 'subject', n: 'n', 'nested/team': 'team' }), {
    subject: 'u1',
    team: 'ml',
  });
  assert.deepEqual(claimGroups(claims, 'groups'), ['a', 'b']);
  assert.deepEqual(claimGroups(claims, 'sub'), ['u1']);
  assert.deepEqual(claimGroups(claims, 'missing'), []);
  assert.equal(userClaimValue(claims, 'sub'), 'u1');
  assert.equal(userClaimValue(claims, 'n'), '5');
  assert.equal(userClaimValue(claims, 'ok'), null);
  assert.equal(userClaimValue({ sub: '' }, 'sub'), null);
  assert.equal(userClaimValue({ sub: 'x'.repeat(257) }, 'sub'), null);
});

test('CIDRs: IPv4, IPv6, IPv4-mapped peers, single hosts', () => {
  const cidrs = parseCidrs(['10.0.0.0/8', '192.168.1.7', 'fd00::/8'], 'test');
  assert.deepEqual(cidrs, ['10.0.0.0/8', '192.168.1.7/32', 'fd00::/8']);
  assert.equal(addressAllowed('10.2.3.4', cidrs), true);
  assert.equal(addressAllowed('::ffff:10.2.3.4', cidrs), true);
  assert.equal(addressAllowed('192.168.1.7', cidrs), true);
  assert.equal(addressAllowed('192.168.1.8', cidrs), false);
  assert.equal(addressAllowed('fd12::1', cidrs), true);
  assert.equal(addressAllowed('fe80::1', cidrs), false);
  assert.equal(addressAllowed('garbage', cidrs), false);
  assert.equal(addressAllowed('1.2.3.4', []), true, 'no binding');
  for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'x', '10.0.0.0/8/1', '10.0.0.0/']) {
    assert.throws(() => parseCidrs([bad], 'test'), { code: 'InvalidCidr' }, bad);
  }
});

test('the presets table documents every preset', () => {
  const rows = PRESETS_MARKDOWN.split('\n');
  assert.equal(rows.length, 2 + PRESET_NAMES.length);
  for (const name of PRESET_NAMES)
    assert.ok(
      rows.some((r) => r.startsWith(`| \`${name}\` |`)),
      name,
    );
});
