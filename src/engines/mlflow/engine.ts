import { CustodyError } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, PreparedCredential } from '../engine.js';
import { generatePassword } from '../password.js';
import { type BasicCredentials, MlflowApiError, MlflowClient, MlflowUnreachableError } from './client.js';
import type { MlflowConfig, MlflowPermission, MlflowRole } from './config.js';
import { renderUsername } from './username.js';

/**
 * Dynamic MLflow users on a tracking server that runs the basic-auth app. Each credential is an
 * MLflow user with per-experiment and per-registered-model permissions; revoking it deletes the
 * user (and with it every grant). Supports both permission APIs: the per-user grant API of
 * MLflow 3.13+ (`/api/3.0/mlflow/users/permissions/grant`) and the older per-resource
 * `experiments|registered-models/permissions/*` endpoints, picked by what the server answers.
 */

type ResourceKind = 'experiment' | 'registered_model';

/** What `revoke` needs, stored (encrypted) by the lease service before `create` runs. */
export interface MlflowRevocation {
  username: string;
  /** Granted resources, for servers that cannot delete a user who still holds permissions. */
  experiments?: string[];
  registered_models?: string[];
}

const PASSWORD_LENGTH = 32;
const VERIFY_ATTEMPTS = 3;

const isApiError = (e: unknown, status?: number, code?: string): e is MlflowApiError =>
  e instanceof MlflowApiError &&
  (status === undefined || e.status === status) &&
  (code === undefined || e.errorCode === code);
/** The exact answer of the basic-auth app for a user (or grant) that does not exist. */
const isGone = (e: unknown) => isApiError(e, 404, 'RESOURCE_DOES_NOT_EXIST');
const isDuplicate = (e: unknown) => isApiError(e, undefined, 'RESOURCE_ALREADY_EXISTS');
/** A route the server does not have (Flask's HTML 404, no MLflow error code). */
const isNoRoute = (e: unknown) => isApiError(e, 404) && !(e as MlflowApiError).errorCode;

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.length > 0) : [];

export class MlflowEngine implements Engine<MlflowRole> {
  readonly type = 'mlflow';
  private config: MlflowConfig;
  private readonly client: MlflowClient;
  /** undefined until the first grant tells which permission API the server has. */
  private legacyPermissions: boolean | undefined;

  constructor(config: MlflowConfig) {
    this.config = { ...config };
    this.client = new MlflowClient({
      baseUrl: config.tracking_uri,
      caPem: config.ca_pem,
      insecureTls: config.insecure_tls,
    });
  }

  private get admin(): BasicCredentials {
    return { username: this.config.username, password: this.config.password };
  }

  async verify(): Promise<void> {
    let answer: unknown;
    try {
      answer = await this.client.call('GET', '2.0/mlflow/users/get', this.admin, {
        query: { username: this.config.username },
      });
    } catch (err) {
      throw this.fail(err, 'Checking the admin user', 400);
    }
    const user = (answer as { user?: { is_admin?: unknown } } | null)?.user;
    if (user?.is_admin !== true) {
      throw new CustodyError(
        'EngineAuthFailed',
        400,
        `The MLflow user ${this.config.username} is not an admin`,
        'Creating and deleting users needs an MLflow admin: configure an admin user, or make this one admin (PATCH /api/2.0/mlflow/users/update-admin).',
      );
    }
  }

  prepare(role: MlflowRole, ctx: IssueContext): PreparedCredential {
    let username = '';
    do {
      username = renderUsername(role.username_template, {
        env: ctx.env,
        engine: ctx.engine,
        role: ctx.role,
        identity: ctx.identityName,
      });
    } while (username === this.config.username);
    const revocation: MlflowRevocation = {
      username,
      experiments: role.experiments.map((e) => e.id),
      registered_models: role.registered_models.map((m) => m.name),
    };
    return { username, password: generatePassword(PASSWORD_LENGTH), revocation: { ...revocation } };
  }

  async create(
    role: MlflowRole,
    prepared: PreparedCredential,
    _ctx: IssueContext,
  ): Promise<IssuedCredential> {
    const { username, password } = prepared;
    this.refuseAdmin(username, 'issue credentials for');
    try {
      await this.client.call('POST', '2.0/mlflow/users/create', this.admin, {
        body: { username, password },
        secrets: [password],
      });
    } catch (err) {
      if (!isDuplicate(err)) throw this.fail(err, `Creating MLflow user ${username}`);
      // A retry after an interrupted create: the user is ours (the name has random characters);
      // make sure it has the password we are about to hand out.
      try {
        await this.updatePassword(username, password);
      } catch (err2) {
        throw this.fail(err2, `Creating MLflow user ${username}`);
      }
    }
    try {
      for (const e of role.experiments) await this.grant('experiment', e.id, username, e.permission);
      for (const m of role.registered_models)
        await this.grant('registered_model', m.name, username, m.permission);
    } catch (err) {
      // Leave nothing half-made behind; the lease service's revocation would also clean up.
      await this.revoke(role, prepared.revocation).catch(() => {});
      throw this.fail(err, `Granting permissions to MLflow user ${username}`);
    }
    return { username, password, data: this.data(username) };
  }

  async renew(): Promise<void> {
    // MLflow users have no expiry of their own: the lease service revokes them when the lease ends.
  }

  async revoke(_role: MlflowRole | null, revocation: Record<string, unknown>): Promise<void> {
    const username = revocation.username;
    if (typeof username !== 'string' || !username) {
      throw new CustodyError('EngineError', 500, 'The revocation data has no MLflow user name');
    }
    this.refuseAdmin(username, 'revoke');
    try {
      await this.deleteUser(username);
      return;
    } catch (err) {
      if (isGone(err)) return;
      const experiments = strings(revocation.experiments);
      const models = strings(revocation.registered_models);
      const retryable = err instanceof MlflowApiError && err.status !== 401 && err.status !== 403;
      if (!retryable || (experiments.length === 0 && models.length === 0)) {
        throw this.fail(err, `Deleting MLflow user ${username}`);
      }
    }
    // MLflow 3.12 and older cannot delete a user who still holds permissions (the permission rows
    // keep a NOT NULL reference to the user): drop them one by one, then delete again.
    for (const id of strings(revocation.experiments)) {
      await this.client
        .call('DELETE', '2.0/mlflow/experiments/permissions/delete', this.admin, {
          body: { experiment_id: id, username },
        })
        .catch((e) => {
          if (!(e instanceof MlflowApiError)) throw this.fail(e, `Deleting MLflow user ${username}`);
        });
    }
    for (const name of strings(revocation.registered_models)) {
      await this.client
        .call('DELETE', '2.0/mlflow/registered-models/permissions/delete', this.admin, {
          body: { name, username },
        })
        .catch((e) => {
          if (!(e instanceof MlflowApiError)) throw this.fail(e, `Deleting MLflow user ${username}`);
        });
    }
    try {
      await this.deleteUser(username);
    } catch (err) {
      if (!isGone(err)) throw this.fail(err, `Deleting MLflow user ${username}`);
    }
  }

  async setPassword(username: string, password: string): Promise<void> {
    if (username === this.config.username) {
      throw new CustodyError(
        'EngineError',
        400,
        "The engine's own admin user cannot be a static role",
        'Rotate the admin password with `custody engine rotate-root` instead.',
      );
    }
    try {
      await this.updatePassword(username, password);
    } catch (err) {
      if (isGone(err)) {
        throw new CustodyError(
          'EngineUserNotFound',
          400,
          `MLflow has no user ${username}`,
          'Create the user in MLflow first, or check the static role user name.',
        );
      }
      throw this.fail(err, `Setting the password of MLflow user ${username}`);
    }
  }

  async rotateRoot(next: string): Promise<Record<string, unknown>> {
    const old = this.config.password;
    try {
      // MLflow 3.13+ wants the current password when a user changes its own; older ones ignore it.
      await this.client.call('PATCH', '2.0/mlflow/users/update-password', this.admin, {
        body: { username: this.config.username, password: next, current_password: old },
        secrets: [next],
      });
    } catch (err) {
      // An HTTP answer is a clear refusal; a lost answer may hide a change that happened, so check.
      if (!(err instanceof MlflowUnreachableError)) throw this.fail(err, 'Rotating the admin password');
    }
    if ((await this.works(next)) === 'yes') {
      this.config = { ...this.config, password: next };
      return configRecord(this.config);
    }
    if ((await this.works(old)) === 'yes') {
      throw new CustodyError(
        'EngineError',
        502,
        'The MLflow admin password did not change; the current one still works',
        'Nothing changed. Check the server and run the rotation again.',
      );
    }
    throw new CustodyError(
      'EngineUnreachable',
      502,
      'The new MLflow admin password could not be verified',
      'The server stopped answering during the rotation; check it, then `custody engine show` and verify the admin login.',
    );
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private data(username: string): Record<string, string> {
    const data: Record<string, string> = {
      MLFLOW_TRACKING_URI: this.config.tracking_uri,
      MLFLOW_TRACKING_USERNAME: username,
    };
    if (this.config.insecure_tls) data.MLFLOW_TRACKING_INSECURE_TLS = 'true';
    return data;
  }

  private refuseAdmin(username: string, what: string): void {
    if (username === this.config.username) {
      throw new CustodyError('EngineError', 400, `Refusing to ${what} the engine's own admin user`);
    }
  }

  private async updatePassword(username: string, password: string): Promise<void> {
    await this.client.call('PATCH', '2.0/mlflow/users/update-password', this.admin, {
      body: { username, password },
      secrets: [password],
    });
  }

  private async deleteUser(username: string): Promise<void> {
    await this.client.call('DELETE', '2.0/mlflow/users/delete', this.admin, { body: { username } });
  }

  private async grant(
    kind: ResourceKind,
    id: string,
    username: string,
    permission: MlflowPermission,
  ): Promise<void> {
    if (this.legacyPermissions !== true) {
      try {
        await this.client.call('POST', '3.0/mlflow/users/permissions/grant', this.admin, {
          body: { username, resource_type: kind, resource_id: id, permission },
        });
        this.legacyPermissions = false;
        return;
      } catch (err) {
        if (isDuplicate(err)) return;
        if (!isNoRoute(err) || this.legacyPermissions === false) throw err;
        this.legacyPermissions = true;
      }
    }
    const [base, body] =
      kind === 'experiment'
        ? ['2.0/mlflow/experiments/permissions', { experiment_id: id, username, permission }]
        : ['2.0/mlflow/registered-models/permissions', { name: id, username, permission }];
    try {
      await this.client.call('POST', `${base}/create`, this.admin, { body });
    } catch (err) {
      if (!isDuplicate(err)) throw err;
      await this.client.call('PATCH', `${base}/update`, this.admin, { body });
    }
  }

  /** Whether the admin can log in with `password`: 'unknown' when the server does not answer. */
  private async works(password: string): Promise<'yes' | 'no' | 'unknown'> {
    for (let attempt = 1; attempt <= VERIFY_ATTEMPTS; attempt++) {
      try {
        await this.client.call(
          'GET',
          '2.0/mlflow/users/get',
          { username: this.config.username, password },
          { query: { username: this.config.username } },
        );
        return 'yes';
      } catch (err) {
        if (isApiError(err, 401)) return 'no';
        if (attempt < VERIFY_ATTEMPTS) await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    return 'unknown';
  }

  /** A CustodyError for a failed call; never carries a password. */
  private fail(err: unknown, what: string, status = 502): CustodyError {
    if (err instanceof CustodyError) return err;
    const where = this.config.tracking_uri;
    if (err instanceof MlflowUnreachableError) {
      return new CustodyError(
        'EngineUnreachable',
        status,
        `${what} failed: MLflow at ${where} is unreachable (${err.reason})`,
        err.tls
          ? "The server's certificate is not trusted: set ca_pem to its CA certificate (or insecure_tls: true for a throwaway test server)."
          : 'Check tracking_uri and that the MLflow server is up and reachable from the broker.',
      );
    }
    if (err instanceof MlflowApiError) {
      if (err.status === 401) {
        return new CustodyError(
          'EngineAuthFailed',
          status,
          `${what} failed: MLflow at ${where} refused the credentials of ${this.config.username}`,
          'Check the engine username and password (after `rotate-root` only Custody knows the new password).',
        );
      }
      if (err.status === 403) {
        return new CustodyError(
          'EngineAuthFailed',
          status,
          `${what} failed: the MLflow user ${this.config.username} is not allowed to do that`,
          'The engine user must be an MLflow admin.',
        );
      }
      if (isNoRoute(err)) {
        return new CustodyError(
          'EngineError',
          status,
          `${what} failed: ${where} has no MLflow basic-auth API (HTTP 404)`,
          'Check tracking_uri, and that the server runs `mlflow server --app-name basic-auth`.',
        );
      }
      return new CustodyError(
        'EngineError',
        status,
        `${what} failed: MLflow answered HTTP ${err.status}${err.errorCode ? ` ${err.errorCode}` : ''}${err.detail ? `: ${err.detail}` : ''}`,
        'Check the role (experiment ids, model names, permissions) and the MLflow server log.',
      );
    }
    return new CustodyError('EngineError', status, `${what} failed`, 'The broker log has details.');
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `MlflowEngine { tracking_uri: '${this.config.tracking_uri}', username: '${this.config.username}' }`;
  }
}

function configRecord(c: MlflowConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    tracking_uri: c.tracking_uri,
    username: c.username,
    password: c.password,
    insecure_tls: c.insecure_tls,
    allow_insecure_http: c.allow_insecure_http,
  };
  if (c.ca_pem) out.ca_pem = c.ca_pem;
  return out;
}
