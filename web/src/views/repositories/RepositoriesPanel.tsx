import { A } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createSignal, For, Show } from 'solid-js';
import { EmptyState, ErrorNotice, Loading } from '../../components/Notice.tsx';
import { graphql, type ResultOf } from '../../graphql.ts';
import { type Refusal, RepositoryForm, type RepositorySettings } from './RepositoryForm.tsx';
import { RepositorySummary } from './RepositorySummary.tsx';
import { CreateRepository, RepositoryFieldsFragment } from './repository-documents.ts';
import { repositoryHref } from './repository-href.ts';
import { WebhookSetup } from './WebhookSetup.tsx';

const NamespaceRepositories = graphql(
  `
  query NamespaceRepositories($path: String!) {
    namespace(path: $path) {
      id
      repositories {
        ...RepositoryFields
      }
    }
  }
`,
  [RepositoryFieldsFragment],
);

type Created = {
  repository: ResultOf<typeof RepositoryFieldsFragment>;
  secret: string;
};

/**
 * A namespace's repositories (`namespace` is `owner@path`), and for those who may write it, the form
 * that connects one. The webhook secret createRepository answers with is kept in this panel's state
 * only: it is gone once the page is left or reloaded, as the API never returns it again.
 */
export function RepositoriesPanel(props: { namespace: string; canWrite: boolean }) {
  const [query, refetch] = createQuery({
    query: NamespaceRepositories,
    variables: () => ({ path: props.namespace }),
    requestPolicy: 'cache-and-network',
  });
  const reload = () => refetch({ requestPolicy: 'network-only' });
  const repositories = () => query.data?.namespace?.repositories ?? [];
  const [connecting, setConnecting] = createSignal(false);
  const [created, setCreated] = createSignal<Created | null>(null);
  const [, create] = createMutation(CreateRepository);

  async function connect(settings: RepositorySettings): Promise<Refusal | null> {
    const result = await create({ input: { namespace: props.namespace, ...settings } });
    if (result.error) return { message: result.error.message };
    const r = result.data?.createRepository;
    switch (r?.__typename) {
      case 'CreateRepositorySuccess':
        setCreated({ repository: r.repository, secret: r.webhookSecret });
        setConnecting(false);
        reload();
        return null;
      case 'InputError':
        return { message: r.message, path: r.path };
      case 'NotFoundError':
        return { message: r.message };
      default:
        return { message: 'no answer from the server' };
    }
  }

  return (
    <section aria-labelledby="repositories-heading" id="repositories">
      <div class="page-head">
        <h2 id="repositories-heading">Repositories</h2>
        <Show when={props.canWrite && !connecting()}>
          <button
            type="button"
            onClick={() => {
              setCreated(null);
              setConnecting(true);
            }}
          >
            Connect a repository
          </button>
        </Show>
      </div>
      <Show when={created()}>
        {(c) => (
          <div class="notice notice-ok created-repository" role="status" data-testid="created-repository">
            <p>
              <strong>Connected {c().repository.name}.</strong>{' '}
              {c().repository.webhookInstalled
                ? 'Kiln added the webhook to the forge.'
                : 'Now add its webhook to the forge.'}
            </p>
            <Show when={c().repository.problem}>{(p) => <p class="problem">{p()}</p>}</Show>
            <WebhookSetup
              forge={c().repository.forge}
              webhookUrl={c().repository.webhookUrl}
              secret={c().secret}
              installed={c().repository.webhookInstalled}
            />
            <div class="actions">
              <A class="button" href={repositoryHref(c().repository.id)}>
                Open {c().repository.name}
              </A>
              <button type="button" class="link-button" onClick={() => setCreated(null)}>
                Done, hide the secret
              </button>
            </div>
          </div>
        )}
      </Show>
      <Show when={connecting()}>
        <RepositoryForm
          id="new-repository"
          submitLabel="Connect"
          busyLabel="Connecting…"
          submit={connect}
          onCancel={() => setConnecting(false)}
        />
      </Show>
      <Show when={query.error && !query.data}>
        <ErrorNotice error={query.error!} title="Could not load the repositories" retry={reload} />
      </Show>
      <Show when={!query.data && query.fetching}>
        <Loading label="Loading repositories…" />
      </Show>
      <Show when={query.data}>
        <Show
          when={repositories().length > 0}
          fallback={
            <EmptyState title="No repositories yet">
              <p class="muted">
                {props.canWrite
                  ? 'Connect one: its pushes and pull requests then start builds.'
                  : 'Those who may write this namespace connect them.'}
              </p>
            </EmptyState>
          }
        >
          <ul class="item-list" aria-label="Repositories">
            <For each={repositories()}>
              {(repo) => (
                <li class="item repository-item" data-repository={repo.name}>
                  <RepositorySummary repository={repo} link={repositoryHref(repo.id)} />
                </li>
              )}
            </For>
          </ul>
        </Show>
      </Show>
    </section>
  );
}
