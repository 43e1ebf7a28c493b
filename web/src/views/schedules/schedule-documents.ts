import { graphql } from '../../graphql.ts';

/** A schedule's settings and state, as lists and its page show them. */
export const ScheduleFieldsFragment = graphql(`
  fragment ScheduleFields on Schedule @_unmask {
    id
    name
    cron
    timezone
    enabled
    manifest
    branch
    onlyOnChanges
    problem
    lastRunAt
    createdAt
    nextRuns(first: 1)
    repository {
      id
      name
      defaultBranch
    }
    builds(first: 1) {
      edges {
        node {
          id
          number
          status
          createdAt
        }
      }
    }
  }
`);

/** The next times an expression fires in a zone: the form's live preview (its InputError names the field). */
export const ScheduleTimes = graphql(`
  query ScheduleTimes($cron: String!, $timezone: String, $first: Int) {
    scheduleTimes(cron: $cron, timezone: $timezone, first: $first) {
      __typename
      ... on ScheduleTimesSuccess {
        times
      }
      ... on InputError {
        message
        path
      }
    }
  }
`);

export const CreateSchedule = graphql(
  `
  mutation CreateSchedule($input: CreateScheduleInput!) {
    createSchedule(input: $input) {
      __typename
      ... on CreateScheduleSuccess {
        schedule {
          ...ScheduleFields
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
  [ScheduleFieldsFragment],
);

export const UpdateSchedule = graphql(
  `
  mutation UpdateSchedule($input: UpdateScheduleInput!) {
    updateSchedule(input: $input) {
      __typename
      ... on UpdateScheduleSuccess {
        schedule {
          ...ScheduleFields
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
  [ScheduleFieldsFragment],
);

export const DeleteSchedule = graphql(`
  mutation DeleteSchedule($input: DeleteScheduleInput!) {
    deleteSchedule(input: $input) {
      __typename
      ... on NotFoundError {
        message
      }
    }
  }
`);
