import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAzureBlobConfig, parseAzureBlobRole } from '../../src/engines/azure-blob/config.js';
import { AzureBlobEngine } from '../../src/engines/azure-blob/engine.js';
import { ensureVenv } from '../support/python-venv.js';

/**
 * Directory-scoped SAS (`sr=d`, accounts with a hierarchical namespace). Azurite has no
 * hierarchical namespace and refuses `sr=d`, so these tokens cannot be tried on the wire here:
 * instead every query parameter and the HMAC signature are checked against the Python SDK's
 * independent signer for the same inputs.
 */
const CHECK = fileURLToPath(new URL('./directory_sas_check.py', import.meta.url));

describe('azure-blob directory SAS (sr=d) matches the Python SDK’s signer', () => {
  it('policy-bound and expiry-only tokens, with depth, protocol and IP range', async () => {
    const venv = await ensureVenv();
    const key = Buffer.from('directory-sas-test-key-0123456789abcdef').toString('base64');
    const engine = new AzureBlobEngine(parseAzureBlobConfig({ account_name: 'lakeacct', account_key: key }));
    const withPolicy = parseAzureBlobRole({
      container: 'datasets',
      prefix: 'imagenet/train',
      permissions: 'lr',
      ip_range: '10.0.0.1-10.0.0.9',
    });
    const expiryOnly = parseAzureBlobRole({
      container: 'datasets',
      prefix: 'a/b/c/',
      permissions: 'racwdl',
      revocation: 'expiry-only',
    });
    const t1 = engine.sign(withPolicy, 'cst-abcdef', new Date());
    const t2 = engine.sign(expiryOnly, null, new Date('2030-01-01T00:00:00Z'));
    const q1 = new URLSearchParams(t1);
    assert.equal(q1.get('sr'), 'd');
    assert.equal(q1.get('sdd'), '2');
    assert.equal(q1.get('si'), 'cst-abcdef');
    assert.equal(q1.get('sp'), null, 'permissions live in the policy');
    assert.equal(q1.get('se'), null, 'expiry lives in the policy');
    assert.equal(q1.get('spr'), 'https');
    const q2 = new URLSearchParams(t2);
    assert.deepEqual([q2.get('sdd'), q2.get('sp'), q2.get('si')], ['3', 'racwdl', null]);
    const input = {
      account: 'lakeacct',
      key,
      cases: [
        {
          token: t1,
          container: 'datasets',
          directory: 'imagenet/train',
          kw: { policy_id: 'cst-abcdef', protocol: 'https', ip: '10.0.0.1-10.0.0.9' },
        },
        {
          token: t2,
          container: 'datasets',
          directory: 'a/b/c',
          kw: { permission: 'racwdl', expiry: '2030-01-01T00:00:00Z', protocol: 'https' },
        },
      ],
    };
    const r = spawnSync(venv.python, [CHECK], { input: JSON.stringify(input), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{}, {}]);
  });
});
