import { A, useNavigate } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { formatDate } from '../../lib/format.ts';

const NamespaceNode = graphql(`
  fragment NamespaceNode on Namespace @_unmask {
    id
    path
    name
    visibility
    owner {
      username
    }
  }
`);

const NamespacesQuery = graphql(
  `
  query Namespaces {
    viewer {
      id
      username
      invites {
        id
        createdAt
        inviter {
          username
        }
        namespace {
          path
          owner {
            username
          }
        }
      }
    }
    namespaces {
      ...NamespaceNode
      # One level of children here (the API's cost limit); deeper ones on each namespace's page.
      children {
        ...NamespaceNode
      }
    }
  }
`,
  [NamespaceNode],
);

const CreateNamespace = graphql(`
  mutation CreateNamespace($input: CreateNamespaceInput!) {
    createNamespace(input: $input) {
      __typename
      ... on CreateNamespaceSuccess {
        namespace {
          path
          owner {
            username
          }
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const AcceptInvite = graphql(`
  mutation AcceptInvite($input: InviteAnswerInput!) {
    acceptInvite(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);
const RejectInvite = graphql(`
  mutation RejectInvite($input: InviteAnswerInput!) {
    rejectInvite(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

/** The console's address of a namespace: /namespaces/<owner>/<path>. */
export const namespaceHref = (owner: string, path: string) =>
  `/namespaces/${encodeURIComponent(owner)}/${path.split('/').map(encodeURIComponent).join('/')}`;

type Node = {
  id: string;
  path: string;
  name: string;
  visibility: string;
  owner: { username: string };
  children?: Node[];
};

function Tree(props: { nodes: Node[]; label?: string }) {
  return (
    <ul class="ns-tree" aria-label={props.label}>
      <For each={props.nodes}>
        {(ns) => (
          <li>
            <A href={namespaceHref(ns.owner.username, ns.path)}>
              {ns.owner.username}@{ns.path}
            </A>{' '}
            <span class="badge badge-idle badge-small">{ns.visibility.toLowerCase()}</span>
            <Show when={ns.children && ns.children.length > 0}>
              <Tree nodes={ns.children!} />
            </Show>
          </li>
        )}
      </For>
    </ul>
  );
}

export default function NamespacesPage() {
  const navigate = useNavigate();
  const [query, refetch] = createQuery({ query: NamespacesQuery, requestPolicy: 'cache-and-network' });
  const reload = () => refetch({ requestPolicy: 'network-only' });
  const [path, setPath] = createSignal('');
  const [visibility, setVisibility] = createSignal('PRIVATE');
  const [error, setError] = createSignal<string | null>(null);
  const [inviteError, setInviteError] = createSignal<string | null>(null);
  const [creation, create] = createMutation(CreateNamespace);
  const [answering, accept] = createMutation(AcceptInvite);
  const [rejecting, reject] = createMutation(RejectInvite);

  async function onCreate(e: SubmitEvent) {
    e.preventDefault();
    setError(null);
    const result = await create({
      input: { path: path().trim(), visibility: visibility() as 'PRIVATE' | 'INTERNAL' | 'PUBLIC' },
    });
    if (result.error) return setError(result.error.message);
    const r = result.data?.createNamespace;
    switch (r?.__typename) {
      case 'CreateNamespaceSuccess':
        navigate(namespaceHref(r.namespace.owner.username, r.namespace.path));
        return;
      case 'InputError':
        return setError(r.message);
      default:
        return setError('no answer from the server');
    }
  }

  async function answer(kind: 'accept' | 'reject', id: string) {
    setInviteError(null);
    const result = kind === 'accept' ? await accept({ input: { id } }) : await reject({ input: { id } });
    const data = result.data as Record<string, { __typename: string; message?: string }> | undefined;
    const r = data?.[kind === 'accept' ? 'acceptInvite' : 'rejectInvite'];
    if (result.error) setInviteError(result.error.message);
    else if (r?.__typename === 'NotFoundError') setInviteError(r.message ?? 'no such invite');
    reload();
  }

  return (
    <section class="page">
      <h1>Namespaces</h1>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load namespaces" retry={reload} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading namespaces…" />
      </Show>
      <Show when={query.data}>
        {(data) => (
          <>
            <section aria-labelledby="invites-heading">
              <h2 id="invites-heading">Invites</h2>
              <Show when={inviteError()}>{(m) => <ErrorNotice error={m()} title="Could not answer" />}</Show>
              <Show
                when={(data().viewer?.invites.length ?? 0) > 0}
                fallback={<p class="muted">No invites waiting for you.</p>}
              >
                <ul class="item-list" aria-label="Invites">
                  <For each={data().viewer?.invites ?? []}>
                    {(invite) => (
                      <li class="item">
                        <span class="item-name">
                          {invite.inviter.username} invites you to{' '}
                          <strong>
                            {invite.namespace.owner.username}@{invite.namespace.path}
                          </strong>
                        </span>
                        <time class="muted" datetime={invite.createdAt}>
                          {formatDate(invite.createdAt)}
                        </time>
                        <span class="actions">
                          <button
                            type="button"
                            class="primary"
                            disabled={answering.fetching || rejecting.fetching}
                            onClick={() => answer('accept', invite.id)}
                          >
                            Accept
                          </button>
                          <button
                            type="button"
                            disabled={answering.fetching || rejecting.fetching}
                            onClick={() => answer('reject', invite.id)}
                          >
                            Reject
                          </button>
                        </span>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
            </section>
            <section aria-labelledby="tree-heading">
              <h2 id="tree-heading">Yours and those you collaborate on</h2>
              <Show
                when={data().namespaces.length > 0}
                fallback={
                  <EmptyState title="No namespaces yet">
                    <p>
                      Create one below, or submit a build whose manifest names one in <code>namespace:</code>.
                    </p>
                  </EmptyState>
                }
              >
                <Tree nodes={data().namespaces as Node[]} label="Namespaces" />
              </Show>
            </section>
          </>
        )}
      </Show>
      <form class="card" aria-label="New namespace" onSubmit={onCreate}>
        <h2>New namespace</h2>
        <div class="form-row">
          <label>
            Path
            <input
              required
              name="path"
              value={path()}
              placeholder="e.g. team or team/app"
              onInput={(e) => setPath(e.currentTarget.value)}
            />
          </label>
          <label>
            Visibility
            <select value={visibility()} onChange={(e) => setVisibility(e.currentTarget.value)}>
              <option value="PRIVATE">Private: you and collaborators</option>
              <option value="INTERNAL">Internal: anyone signed in</option>
              <option value="PUBLIC">Public: anyone</option>
            </select>
          </label>
        </div>
        <Show when={error()}>
          {(m) => <ErrorNotice error={m()} title="Could not create the namespace" />}
        </Show>
        <div class="actions">
          <button type="submit" class="primary" disabled={creation.fetching}>
            {creation.fetching ? 'Creating…' : 'Create namespace'}
          </button>
        </div>
      </form>
    </section>
  );
}
