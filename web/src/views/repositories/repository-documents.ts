import { graphql } from '../../graphql.ts';

export type Forge = ReturnType<typeof graphql.scalar<'Forge'>>;

/** A repository's settings and state, as lists and its page show them. */
export const RepositoryFieldsFragment = graphql(`
  fragment RepositoryFields on Repository @_unmask {
    id
    name
    cloneUrl
    forge
    defaultBranch
    manifestPaths
    includeBranches
    excludeBranches
    allowForkSecrets
    buildEveryCommit
    sshKey
    pollInterval
    forgeApiUrl
    forgeRepository
    hasForgeToken
    webhookInstalled
    webhookUrl
    lastCheckedAt
    problem
    createdAt
  }
`);

export const CreateRepository = graphql(
  `
  mutation CreateRepository($input: CreateRepositoryInput!) {
    createRepository(input: $input) {
      __typename
      ... on CreateRepositorySuccess {
        webhookSecret
        repository {
          ...RepositoryFields
        }
      }
      ... on InputError {
        message
        path
      }
      ... on NotFoundError {
        message
      }
    }
  }
`,
  [RepositoryFieldsFragment],
);

export const UpdateRepository = graphql(
  `
  mutation UpdateRepository($input: UpdateRepositoryInput!) {
    updateRepository(input: $input) {
      __typename
      ... on UpdateRepositorySuccess {
        repository {
          ...RepositoryFields
        }
      }
      ... on InputError {
        message
        path
      }
      ... on NotFoundError {
        message
      }
    }
  }
`,
  [RepositoryFieldsFragment],
);

export const DeleteRepository = graphql(`
  mutation DeleteRepository($input: DeleteRepositoryInput!) {
    deleteRepository(input: $input) {
      __typename
      ... on NotFoundError {
        message
      }
    }
  }
`);

export const TriggerRepository = graphql(`
  mutation TriggerRepository($input: TriggerRepositoryInput!) {
    triggerRepository(input: $input) {
      __typename
      ... on TriggerRepositorySuccess {
        outcome
        builds {
          id
          number
        }
      }
      ... on InputError {
        message
        path
      }
      ... on NotFoundError {
        message
      }
    }
  }
`);

export const ReplayForgeEvent = graphql(`
  mutation ReplayForgeEvent($input: ReplayForgeEventInput!) {
    replayForgeEvent(input: $input) {
      __typename
      ... on ReplayForgeEventSuccess {
        event {
          id
        }
      }
      ... on InputError {
        message
      }
      ... on NotFoundError {
        message
      }
    }
  }
`);
