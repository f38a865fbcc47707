export type PresetName = 'azure' | 'github' | 'kubernetes' | 'okta' | 'google';

export interface JwtPreset {
  name: PresetName;
  title: string;
  issuer: string | null;
  issuerPattern: RegExp | null;
  issuerExample: string;
  keySource: string;
  algorithms: string[];
  audienceHint: string;
  userClaim: string;
  groupsClaim: string | null;
  identityKind: 'workload' | 'user';
  boundClaimHints: string[];
}

export const PRESET_NAMES: readonly PresetName[] = ['azure', 'github', 'kubernetes', 'okta', 'google'];

export const PRESETS: Record<PresetName, JwtPreset> = {
  azure: {
    name: 'azure',
    title: 'Microsoft Entra ID (managed identities, service principals, users)',
    issuer: null,
    issuerPattern:
      /^(?:https:\/\/(?:login\.microsoftonline\.com|login\.microsoftonline\.us|login\.chinacloudapi\.cn)\/[0-9a-f-]{36}\/v2\.0|https:\/\/sts\.windows\.net\/[0-9a-f-]{36}\/)$/,
    issuerExample: 'https://login.microsoftonline.com/TENANT_ID/v2.0',
    keySource: 'discovery',
    algorithms: ['RS256'],
    audienceHint: 'the application ID URI or client id of the app registration that represents Custody',
    userClaim: 'oid',
    groupsClaim: 'groups',
    identityKind: 'workload',
    boundClaimHints: ['tid', 'azp', 'xms_mirid', 'roles'],
  },
  github: {
    name: 'github',
    title: 'GitHub Actions OIDC',
    issuer: 'https://token.actions.githubusercontent.com',
    issuerPattern: null,
    issuerExample: 'https://token.actions.githubusercontent.com',
    keySource: 'discovery',
    algorithms: ['RS256'],
    audienceHint: 'the audience the workflow requests (default https://github.com/OWNER)',
    userClaim: 'sub',
    groupsClaim: null,
    identityKind: 'workload',
    boundClaimHints: ['repository', 'repository_owner', 'ref', 'environment', 'job_workflow_ref'],
  },
  kubernetes: {
    name: 'kubernetes',
    title: 'Kubernetes service account tokens (projected volume)',
    issuer: null,
    issuerPattern: null,
    issuerExample: 'https://kubernetes.default.svc.cluster.local',
    keySource:
      'discovery, jwks_url (the API server /openid/v1/jwks) or public_keys (the service-account signing key, PEM)',
    algorithms: ['RS256', 'ES256'],
    audienceHint: 'the audience set on the projected token volume, e.g. custody',
    userClaim: 'sub',
    groupsClaim: null,
    identityKind: 'workload',
    boundClaimHints: ['kubernetes.io/namespace', 'kubernetes.io/serviceaccount/name'],
  },
  okta: {
    name: 'okta',
    title: 'Okta (people signing in)',
    issuer: null,
    issuerPattern: null,
    issuerExample: 'https://ORG.okta.com/oauth2/default',
    keySource: 'discovery',
    algorithms: ['RS256'],
    audienceHint: 'the audience of the Okta authorization server, e.g. api://custody',
    userClaim: 'sub',
    groupsClaim: 'groups',
    identityKind: 'user',
    boundClaimHints: ['cid', 'email'],
  },
  google: {
    name: 'google',
    title: 'Google ID tokens (GCP service accounts and Google accounts)',
    issuer: 'https://accounts.google.com',
    issuerPattern: null,
    issuerExample: 'https://accounts.google.com',
    keySource: 'discovery',
    algorithms: ['RS256'],
    audienceHint:
      'the audience the caller requests from the metadata server, e.g. https://custody.example.com',
    userClaim: 'sub',
    groupsClaim: null,
    identityKind: 'workload',
    boundClaimHints: ['email', 'email_verified', 'hd', 'azp'],
  },
};

const code = (s: string) => `\`${s}\``;

export const PRESETS_MARKDOWN = [
  '| preset | for | issuer | keys | algorithms | audience (required) | user_claim | groups_claim | identity_kind | useful bound_claims |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...PRESET_NAMES.map((n) => {
    const p = PRESETS[n];
    const issuer = p.issuer
      ? `${code(p.issuer)} (filled in)`
      : `${code(p.issuerExample)}${p.issuerPattern ? ' (format enforced)' : ' (example)'}`;
    return [
      code(p.name),
      p.title,
      issuer,
      p.keySource,
      p.algorithms.join(', '),
      p.audienceHint,
      code(p.userClaim),
      p.groupsClaim ? code(p.groupsClaim) : '-',
      p.identityKind,
      p.boundClaimHints.map(code).join(', '),
    ].join(' | ');
  }).map((row) => `| ${row} |`),
].join('\n');
