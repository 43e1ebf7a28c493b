import { A, useParams } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { RepositoriesPanel } from '../repositories/RepositoriesPanel.tsx';
import { SchedulesPanel } from '../schedules/SchedulesPanel.tsx';
import { SecretsPanel } from '../secrets/SecretsPanel.tsx';
import { WebhooksPanel } from '../webhooks/WebhooksPanel.tsx';
import { BadgePanel } from './BadgePanel.tsx';
import { namespaceHref } from './NamespacesPage.tsx';

const NamespaceQuery = graphql(`
  query Namespace($path: String!) {
    viewer {
      id
      username
      isAdmin
    }
    namespace(path: $path) {
      id
      path
      name
      level
      visibility
      canWrite
      owner {
        username
      }
      parent {
        path
      }
      children {
        id
        path
        name
      }
      collaborators {
        id
        username
      }
    }
  }
`);

const NamespaceInvites = graphql(`
  query NamespaceInvites($path: String!) {
    namespace(path: $path) {
      id
      invites {
        id
        invitee {
          username
        }
      }
    }
  }
`);

const UpdateNamespace = graphql(`
  mutation UpdateNamespace($input: UpdateNamespaceInput!) {
    updateNamespace(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

const InviteCollaborator = graphql(`
  mutation InviteCollaborator($input: CollaboratorInput!) {
    inviteCollaborator(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

const RemoveCollaborator = graphql(`
  mutation RemoveCollaborator($input: CollaboratorInput!) {
    removeCollaborator(input: $input) {
      __typename
      ... on Error {
        message
      }
    }
  }
`);

type Visibility = 'PRIVATE' | 'INTERNAL' | 'PUBLIC';

export default function NamespacePage() {
  const params = useParams<{ owner: string; path: string }>();
  const ref = () => `${params.owner}@${params.path}`;
  const [query, refetch] = createQuery({
    query: NamespaceQuery,
    variables: () => ({ path: ref() }),
    requestPolicy: 'cache-and-network',
  });
  const ns = () => query.data?.namespace;
  const isOwner = () => {
    const v = query.data?.viewer;
    return Boolean(v && ns() && (v.isAdmin || v.username === ns()!.owner.username));
  };
  const [invites, refetchInvites] = createQuery({
    query: NamespaceInvites,
    variables: () => ({ path: ref() }),
    pause: () => !isOwner(),
  });
  const reload = () => {
    refetch({ requestPolicy: 'network-only' });
    if (isOwner()) refetchInvites({ requestPolicy: 'network-only' });
  };
  const [visibilityError, setVisibilityError] = createSignal<string | null>(null);
  const [username, setUsername] = createSignal('');
  const [inviteError, setInviteError] = createSignal<string | null>(null);
  const [invited, setInvited] = createSignal<string | null>(null);
  const [updating, update] = createMutation(UpdateNamespace);
  const [inviting, invite] = createMutation(InviteCollaborator);
  const [, removeCollaborator] = createMutation(RemoveCollaborator);

  async function changeVisibility(visibility: Visibility) {
    setVisibilityError(null);
    const result = await update({ input: { path: ref(), visibility } });
    const r = result.data?.updateNamespace;
    if (result.error) setVisibilityError(result.error.message);
    else if (r?.__typename === 'NotFoundError') setVisibilityError(r.message);
    reload();
  }

  async function onInvite(e: SubmitEvent) {
    e.preventDefault();
    setInviteError(null);
    setInvited(null);
    const who = username().trim();
    const result = await invite({ input: { path: ref(), username: who } });
    if (result.error) return setInviteError(result.error.message);
    const r = result.data?.inviteCollaborator;
    switch (r?.__typename) {
      case 'InviteCollaboratorSuccess':
        setInvited(who);
        setUsername('');
        reload();
        return;
      case 'InputError':
      case 'NotFoundError':
        return setInviteError(r.message);
      default:
        return setInviteError('no answer from the server');
    }
  }

  async function remove(who: string) {
    if (!window.confirm(`Remove ${who} from ${ref()}?`)) return;
    await removeCollaborator({ input: { path: ref(), username: who } });
    reload();
  }

  return (
    <section class="page">
      <p class="breadcrumb">
        <A href="/namespaces">Namespaces</A>
        <Show when={ns()?.parent}>
          {(p) => (
            <>
              {' / '}
              <A href={namespaceHref(params.owner, p().path)}>{p().path}</A>
            </>
          )}
        </Show>
      </p>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the namespace" retry={reload} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading the namespace…" />
      </Show>
      <Show when={query.data && !ns()}>
        <h1>Not found</h1>
        <EmptyState title={`No namespace ${ref()}`}>
          <p>It does not exist, or you may not see it.</p>
        </EmptyState>
      </Show>
      <Show when={ns()}>
        {(n) => (
          <>
            <div class="page-head">
              <h1>
                {n().owner.username}@{n().path}
              </h1>
              <div class="actions">
                <a class="button" href="#repositories">
                  Repositories
                </a>
                <a class="button" href="#schedules">
                  Schedules
                </a>
                <Show when={n().canWrite}>
                  <a class="button" href="#webhooks">
                    Webhooks
                  </a>
                </Show>
                <a class="button" href="#badge">
                  Badge
                </a>
                <A class="button" href={`/builds?namespace=${encodeURIComponent(ref())}`}>
                  Builds
                </A>
              </div>
            </div>
            <section aria-labelledby="visibility-heading" class="card">
              <h2 id="visibility-heading">Visibility</h2>
              <Show
                when={isOwner() && n().level === 1}
                fallback={
                  <p>
                    <span class="badge badge-idle">{n().visibility.toLowerCase()}</span>{' '}
                    <span class="muted">
                      {n().level > 1
                        ? 'Set on the root; it applies to the whole tree.'
                        : 'The owner sets it.'}
                    </span>
                  </p>
                }
              >
                <label>
                  Who may see it
                  <select
                    value={n().visibility}
                    disabled={updating.fetching}
                    onChange={(e) => changeVisibility(e.currentTarget.value as Visibility)}
                  >
                    <option value="PRIVATE">Private: you and collaborators</option>
                    <option value="INTERNAL">Internal: anyone signed in</option>
                    <option value="PUBLIC">Public: anyone</option>
                  </select>
                </label>
                <Show when={updating.fetching}>
                  <Loading label="Saving…" />
                </Show>
              </Show>
              <Show when={visibilityError()}>
                {(m) => <ErrorNotice error={m()} title="Could not change the visibility" />}
              </Show>
            </section>
            <RepositoriesPanel namespace={ref()} canWrite={n().canWrite} />
            <SchedulesPanel namespace={ref()} canWrite={n().canWrite} />
            <Show when={n().canWrite}>
              <WebhooksPanel namespace={ref()} />
            </Show>
            <BadgePanel
              owner={n().owner.username}
              path={n().path}
              visibility={n().visibility}
              canWrite={n().canWrite}
            />
            <section aria-labelledby="children-heading">
              <h2 id="children-heading">Children</h2>
              <Show when={n().children.length > 0} fallback={<p class="muted">No child namespaces.</p>}>
                <ul class="ns-tree" aria-label="Children">
                  <For each={n().children}>
                    {(c) => (
                      <li>
                        <A href={namespaceHref(params.owner, c.path)}>{c.path}</A>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
            </section>
            <section aria-labelledby="collaborators-heading">
              <h2 id="collaborators-heading">Collaborators</h2>
              <Show when={n().collaborators.length > 0} fallback={<p class="muted">No collaborators yet.</p>}>
                <ul class="item-list" aria-label="Collaborators">
                  <For each={n().collaborators}>
                    {(c) => (
                      <li class="item">
                        <span class="item-name">{c.username}</span>
                        <Show when={isOwner()}>
                          <button
                            type="button"
                            class="link-button"
                            aria-label={`Remove ${c.username}`}
                            onClick={() => remove(c.username)}
                          >
                            Remove
                          </button>
                        </Show>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
              <Show when={isOwner()}>
                <Show when={(invites.data?.namespace?.invites.length ?? 0) > 0}>
                  <p class="muted" data-testid="pending-invites">
                    Waiting for an answer:{' '}
                    {invites.data?.namespace?.invites.map((i) => i.invitee.username).join(', ')}
                  </p>
                </Show>
                <form class="card" aria-label="Invite a collaborator" onSubmit={onInvite}>
                  <label>
                    Invite by username
                    <input
                      required
                      name="username"
                      autocomplete="off"
                      value={username()}
                      onInput={(e) => setUsername(e.currentTarget.value)}
                    />
                  </label>
                  <Show when={invited()}>
                    {(who) => (
                      <p class="notice notice-ok" role="status">
                        Invited {who()}.
                      </p>
                    )}
                  </Show>
                  <Show when={inviteError()}>
                    {(m) => <ErrorNotice error={m()} title="Could not invite" />}
                  </Show>
                  <div class="actions">
                    <button type="submit" class="primary" disabled={inviting.fetching}>
                      {inviting.fetching ? 'Inviting…' : 'Invite'}
                    </button>
                  </div>
                </form>
              </Show>
            </section>
            <Show when={n().canWrite}>
              <SecretsPanel namespace={ref()} />
            </Show>
          </>
        )}
      </Show>
    </section>
  );
}
