/**
 * Limits on GraphQL documents that hold before the schema's own (depth, breadth and complexity are
 * checked by @pothos/plugin-complexity once a document is parsed): graphql-js parses recursively, so
 * a document of a few thousand nested selections overflows the stack and would come back as a masked
 * 500. A scan of its brackets refuses one nested too deep before it is parsed, and a token budget
 * bounds the parse's work, both with client errors, on HTTP and WebSocket alike.
 */
import { type GraphQLError, parse } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

/** Far above any real query (the console's largest has a few hundred). */
export const MAX_DOCUMENT_TOKENS = 20_000;
/** Brackets ({, (, [) open at once; the schema allows a depth of 12, so this only stops abuse. */
export const MAX_DOCUMENT_NESTING = 64;

export function useDocumentLimits(): Plugin {
  return {
    onParse({ setParseFn }) {
      setParseFn((source, options) => {
        const text = typeof source === 'string' ? source : source.body;
        const at = deeperThan(text, MAX_DOCUMENT_NESTING);
        if (at !== null) {
          throw createGraphQLError(
            `the document's nesting depth passes ${MAX_DOCUMENT_NESTING} levels (at character ${at + 1})`,
            { extensions: { code: 'GRAPHQL_PARSE_FAILED' } },
          );
        }
        return parse(source, { ...options, maxTokens: MAX_DOCUMENT_TOKENS });
      });
    },
  };
}

/** Where `text` first opens more than `limit` brackets at once, outside strings and comments; else null. */
export function deeperThan(text: string, limit: number): number | null {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '#') {
      while (i < text.length && text[i] !== '\n' && text[i] !== '\r') i++;
    } else if (ch === '"') {
      if (text.startsWith('"""', i)) {
        const end = text.indexOf('"""', i + 3);
        i = end === -1 ? text.length : end + 2;
      } else {
        for (i++; i < text.length && text[i] !== '"' && text[i] !== '\n'; i++) if (text[i] === '\\') i++;
      }
    } else if (ch === '{' || ch === '(' || ch === '[') {
      depth++;
      if (depth > limit) return i;
    } else if (ch === '}' || ch === ')' || ch === ']') {
      depth = Math.max(0, depth - 1);
    }
  }
  return null;
}

/**
 * What a subscription that could not start tells its client: a GraphQLError as it is; anything else
 * (the database is away while its credentials are checked) as a retryable UNAVAILABLE, since
 * graphql-ws closes the whole connection on anything but GraphQLErrors.
 */
export function subscriptionErrors(err: unknown, onUnexpected: (err: unknown) => void) {
  if (err instanceof Error && err.name === 'GraphQLError') return [err as GraphQLError];
  onUnexpected(err);
  return [
    createGraphQLError('the service cannot answer right now; try again shortly', {
      extensions: { code: 'UNAVAILABLE' },
    }),
  ];
}
