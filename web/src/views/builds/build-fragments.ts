import { graphql } from '../../graphql.ts';

/** What a builds-list row shows. */
export const BuildRowFragment = graphql(`
  fragment BuildRow on Build @_unmask {
    id
    number
    namespace {
      path
      owner {
        username
      }
    }
    owner {
      username
    }
    status
    trigger
    comment
    tags
    createdAt
    startedAt
    finishedAt
    cause {
      kind
      ref
      sha
      pullRequest
      message
      user {
        username
      }
    }
  }
`);

/** Why a build exists, and what became of reporting its status to the forge. */
export const BuildCauseFragment = graphql(`
  fragment BuildCause on Build @_unmask {
    forgeStatus
    cause {
      kind
      ref
      sha
      url
      author
      message
      pullRequest
      user {
        username
      }
      repository {
        id
        name
      }
      schedule {
        id
        name
        timezone
      }
      scheduledFor
      late
    }
  }
`);

/** What changes while a build runs: its status and its jobs'. */
export const BuildStateFragment = graphql(`
  fragment BuildState on Build @_unmask {
    id
    number
    namespace {
      path
      owner {
        username
      }
    }
    owner {
      username
    }
    status
    trigger
    comment
    tags
    queue
    attempt
    reason
    createdAt
    startedAt
    finishedAt
    stages {
      name
      canFail
      jobs {
        id
        name
        stage
        status
        exitCode
        startedAt
        finishedAt
      }
    }
  }
`);
