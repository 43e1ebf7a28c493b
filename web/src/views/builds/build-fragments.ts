import { graphql } from '../../graphql.ts';

/** What a builds-list row shows. */
export const BuildRowFragment = graphql(`
  fragment BuildRow on Build @_unmask {
    id
    number
    status
    trigger
    comment
    tags
    createdAt
    startedAt
    finishedAt
  }
`);

/** What changes while a build runs: its status and its jobs'. */
export const BuildStateFragment = graphql(`
  fragment BuildState on Build @_unmask {
    id
    number
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
