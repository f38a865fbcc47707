import { type TSchema, Type } from '@sinclair/typebox';

/** Request and response schemas: one source for validation, serialization and /v1/openapi.json. */
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Time = Nullable(Type.String({ format: 'date-time' }));

export const ErrorSchema = Type.Object(
  {
    error: Type.Object({ code: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()) }),
  },
  { $id: 'Error' },
);

export const Tags = Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 256 }), {
  maxProperties: 15,
});

export const VersionMeta = Type.Object({
  env: Type.String(),
  name: Type.String(),
  version: Type.String({ description: '32-character version id' }),
  seq: Type.Integer({ description: 'version number, 1 for the first' }),
  enabled: Type.Boolean(),
  not_before: Time,
  expires: Time,
  content_type: Nullable(Type.String()),
  tags: Type.Record(Type.String(), Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

export const SecretValue = Type.Intersect([VersionMeta, Type.Object({ value: Type.String() })]);
export const SecretSummary = Type.Intersect([VersionMeta, Type.Object({ versions: Type.Integer() })]);
export const DeletedSecret = Type.Intersect([
  SecretSummary,
  Type.Object({
    deleted_at: Type.String({ format: 'date-time' }),
    scheduled_purge_at: Type.String({ format: 'date-time' }),
  }),
]);

export const SetSecretBody = Type.Object(
  {
    value: Type.String(),
    content_type: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    tags: Type.Optional(Tags),
    enabled: Type.Optional(Type.Boolean()),
    not_before: Type.Optional(Time),
    expires: Type.Optional(Time),
    cas: Type.Optional(
      Type.Integer({ minimum: 0, description: 'expected current version number; 0 = must not exist' }),
    ),
  },
  { additionalProperties: false },
);

export const UpdateSecretBody = Type.Object(
  {
    content_type: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    tags: Type.Optional(Tags),
    enabled: Type.Optional(Type.Boolean()),
    not_before: Type.Optional(Time),
    expires: Type.Optional(Time),
  },
  { additionalProperties: false },
);

export const EnvironmentSchema = Type.Object({
  name: Type.String(),
  retention_days: Type.Integer(),
  purge_protection: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

export const TokenInfoSchema = Type.Object({
  accessor: Type.String(),
  policies: Type.Array(Type.String()),
  display_name: Type.String(),
  identity_id: Nullable(Type.String()),
  meta: Type.Record(Type.String(), Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Time,
  max_expires_at: Time,
  ttl: Type.Integer({ description: 'seconds left; 0 = never expires' }),
  renewable: Type.Boolean(),
});

export const TokenRef = Type.Object(
  {
    accessor: Type.Optional(Type.String({ maxLength: 64 })),
    token: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const Duration = Type.Union([Type.String({ maxLength: 32 }), Type.Integer({ minimum: 0 })]);

export const SealStatusSchema = Type.Object({
  initialized: Type.Boolean(),
  sealed: Type.Boolean(),
  mode: Nullable(Type.String()),
  shares: Type.Integer(),
  threshold: Type.Integer(),
  progress: Type.Integer(),
  key_term: Nullable(Type.Integer()),
});

export const SecretPath = Type.Object({ env: Type.String({ maxLength: 64 }), '*': Type.String() });
export const EnvPath = Type.Object({ env: Type.String({ maxLength: 64 }) });
