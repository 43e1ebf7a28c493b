/**
 * The accounts operations the console uses (CONTRACT.graphql's names). Every expected failure
 * implements `Error`, so a page shows its message whatever the member is.
 */
import { graphql } from '../../graphql.ts';

export const LogIn = graphql(`
  mutation LogIn($input: LogInInput!) {
    logIn(input: $input) {
      __typename
      ... on LogInSuccess {
        token
        user {
          id
          username
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

export const SignUp = graphql(`
  mutation SignUp($input: SignUpInput!) {
    signUp(input: $input) {
      __typename
      ... on SignUpSuccess {
        user {
          id
          username
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

export const CreateToken = graphql(`
  mutation CreateToken($input: CreateTokenInput!) {
    createToken(input: $input) {
      __typename
      ... on CreateTokenSuccess {
        token
        accessToken {
          id
          name
          scopes
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

/** The message of an expected failure (a result member implementing Error). */
export function failureMessage(result: { __typename: string } | null | undefined): string {
  if (result && 'message' in result && typeof result.message === 'string') return result.message;
  return result ? result.__typename : 'no answer from the server';
}

/** The server predates accounts: it does not know the operation at all. */
export function isMissingOperation(message: string): boolean {
  return /Cannot query field "(logIn|signUp|createToken)"|Unknown type "(LogInInput|SignUpInput|CreateTokenInput)"/.test(
    message,
  );
}
