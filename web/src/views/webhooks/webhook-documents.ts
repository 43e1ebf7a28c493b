import { graphql } from '../../graphql.ts';

/** A webhook's settings and state with its newest delivery, as lists show them. */
export const WebhookFieldsFragment = graphql(`
  fragment WebhookFields on Webhook @_unmask {
    id
    url
    subscription
    active
    problem
    createdAt
    latest: deliveries(first: 1) {
      edges {
        node {
          id
          state
          responseStatus
          attempts
          createdAt
        }
      }
    }
  }
`);

/** One delivery, as a webhook's page lists them. */
export const WebhookDeliveryFieldsFragment = graphql(`
  fragment WebhookDeliveryFields on WebhookDelivery @_unmask {
    id
    payload
    state
    responseStatus
    attempts
    lastError
    nextAttemptAt
    deliveredAt
    createdAt
  }
`);

/** Why createWebhook would refuse a subscription document, or null: the editor's check as one types. */
export const WebhookSubscriptionProblem = graphql(`
  query WebhookSubscriptionProblem($subscription: String!) {
    webhookSubscriptionProblem(subscription: $subscription)
  }
`);

export const CreateWebhook = graphql(
  `
  mutation CreateWebhook($input: CreateWebhookInput!) {
    createWebhook(input: $input) {
      __typename
      ... on CreateWebhookSuccess {
        secret
        webhook {
          ...WebhookFields
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
  [WebhookFieldsFragment],
);

export const UpdateWebhook = graphql(
  `
  mutation UpdateWebhook($input: UpdateWebhookInput!) {
    updateWebhook(input: $input) {
      __typename
      ... on UpdateWebhookSuccess {
        webhook {
          ...WebhookFields
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
  [WebhookFieldsFragment],
);

export const DeleteWebhook = graphql(`
  mutation DeleteWebhook($input: DeleteWebhookInput!) {
    deleteWebhook(input: $input) {
      __typename
      ... on NotFoundError {
        message
      }
    }
  }
`);

export const RedeliverWebhookDelivery = graphql(
  `
  mutation RedeliverWebhookDelivery($input: RedeliverWebhookDeliveryInput!) {
    redeliverWebhookDelivery(input: $input) {
      __typename
      ... on RedeliverWebhookDeliverySuccess {
        delivery {
          ...WebhookDeliveryFields
        }
      }
      ... on NotFoundError {
        message
      }
    }
  }
`,
  [WebhookDeliveryFieldsFragment],
);
