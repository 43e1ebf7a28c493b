/**
 * The Pothos schema builder: plugins, context type and scalars. Types live in modules/<domain>/*.schema.ts
 * and are gathered by schema.ts.
 */
import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { GraphQLError, Kind } from 'graphql';
import { forbidden, unauthenticated } from './auth/principal.ts';
import { hasScope, type Scope } from './auth/scopes.ts';
import type { Context } from './context.ts';

const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** A file of a GraphQL multipart request (graphql-yoga parses the multipart request spec). */
export interface UploadedFile {
  name: string;
  type: string;
  size: number;
  stream(): { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; releaseLock(): void } };
}

/** The bytes of an upload, as they are read. */
export async function* uploadChunks(file: UploadedFile): AsyncGenerator<Uint8Array> {
  const reader = file.stream().getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

export const builder = new SchemaBuilder<{
  Context: Context;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    File: { Input: UploadedFile; Output: never };
    ID: { Input: string; Output: string };
  };
  DefaultFieldNullability: false;
  DefaultInputFieldRequiredness: false;
  AuthScopes: {
    /** Anyone, with or without a token. */
    public: boolean;
    /** A signed-in user (session or personal token). */
    signedIn: boolean;
    /** The token holds this scope (sessions hold all; anonymous callers hold every `*:read`). */
    scope: Scope;
    admin: boolean;
  };
}>({
  plugins: [ScopeAuthPlugin, ErrorsPlugin, RelayPlugin, DataloaderPlugin, ComplexityPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // Subscriptions are authorized once, when they start; objects check their own visibility once each.
    authorizeOnSubscribe: true,
    runScopesOnType: true,
    authScopes: (ctx) => ({
      public: true,
      signedIn: ctx.auth.viewer !== null,
      scope: (scope: Scope) => hasScope(ctx.auth.scopes, scope),
      admin: ctx.auth.viewer?.isAdmin === true,
    }),
    unauthorizedError: (_parent, ctx, _info, result) =>
      ctx.auth.viewer ? forbidden(result.message) : unauthenticated(`sign in first: ${result.message}`),
  },
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: 10,
    limit: { complexity: 5000, depth: 12, breadth: 200 },
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodesQueryOptions: false,
    // Each node type checks its own visibility.
    nodeQueryOptions: { authScopes: { public: true } },
  },
  errors: {
    defaultResultOptions: { name: ({ fieldName }) => `${pascal(fieldName)}Success` },
    defaultUnionOptions: { name: ({ fieldName }) => `${pascal(fieldName)}Result` },
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

builder.scalarType('DateTime', {
  description: 'An ISO-8601 date and time in UTC, e.g. 2026-11-21T20:25:33.000Z',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(String(value)).toISOString()),
  parseValue: (value) => {
    const date = new Date(String(value));
    if (Number.isNaN(date.getTime())) throw new GraphQLError(`invalid DateTime: ${String(value)}`);
    return date;
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be a string');
    const date = new Date(ast.value);
    if (Number.isNaN(date.getTime())) throw new GraphQLError(`invalid DateTime: ${ast.value}`);
    return date;
  },
});

builder.scalarType('File', {
  description:
    'An uploaded file: send the operation as a GraphQL multipart request (multipart/form-data), with the file in a part mapped to this variable.',
  serialize: () => {
    throw new GraphQLError('File is for input only');
  },
  parseValue: (value) => {
    const file = value as Partial<UploadedFile> | null;
    if (
      !file ||
      typeof file !== 'object' ||
      typeof file.stream !== 'function' ||
      typeof file.size !== 'number'
    ) {
      throw new GraphQLError('a File must be sent as a part of a multipart request');
    }
    return file as UploadedFile;
  },
  parseLiteral: () => {
    throw new GraphQLError('a File must be sent as a part of a multipart request, not written in the query');
  },
});

/** Every expected failure of a mutation implements Error and is returned in the mutation's result union. */
export const ErrorInterface = builder.interfaceRef<Error>('Error').implement({
  description:
    'Every expected failure of a mutation is a type implementing Error, returned in the result union.',
  fields: (t) => ({ message: t.exposeString('message') }),
});

/** A thing that does not exist, or that the viewer may not see (the two are not told apart). */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

builder.objectType(NotFoundError, {
  name: 'NotFoundError',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof NotFoundError,
  fields: () => ({}),
});

/** An input value was refused; `path` names it (e.g. `password`), as manifest problems do. */
export class InputError extends Error {
  override name = 'InputError';
  constructor(
    message: string,
    readonly path: string | null = null,
  ) {
    super(message);
  }
}

builder.objectType(InputError, {
  name: 'InputError',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof InputError,
  fields: (t) => ({ path: t.exposeString('path', { nullable: true }) }),
});
