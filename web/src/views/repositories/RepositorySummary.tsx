import { A } from '@solidjs/router';
import { Show } from 'solid-js';
import type { ResultOf } from '../../graphql.ts';
import { forgeLabel } from './RepositoryForm.tsx';
import type { RepositoryFieldsFragment } from './repository-documents.ts';

type Repository = ResultOf<typeof RepositoryFieldsFragment>;

/** How often Kiln asks the remote itself, in words. */
export const pollWords = (seconds: number | null) =>
  seconds === null ? 'webhooks only' : `polled every ${seconds} s`;

/** How the webhook got onto the forge, in words. */
export const hookWords = (repo: Pick<Repository, 'webhookInstalled'>) =>
  repo.webhookInstalled ? 'webhook installed by Kiln' : 'webhook added by hand';

/** One repository in a list: its name (a link to its page), where it lives, and any problem. */
export function RepositorySummary(props: { repository: Repository; link: string }) {
  const r = () => props.repository;
  return (
    <div class="repository-summary">
      <div class="repository-line">
        <A class="item-name" href={props.link}>
          {r().name}
        </A>
        <span class="badge badge-idle">{forgeLabel(r().forge)}</span>
        <code class="item-value muted">{r().cloneUrl}</code>
      </div>
      <div class="repository-meta muted">
        <span>
          default branch <code>{r().defaultBranch}</code>
        </span>
        <span>{pollWords(r().pollInterval)}</span>
        <span>{hookWords(r())}</span>
        <A href={`${props.link}#builds`}>Builds</A>
      </div>
      <Show when={r().problem}>
        {(p) => (
          <p class="notice notice-error problem" role="alert">
            <strong>Problem:</strong> {p()}
          </p>
        )}
      </Show>
    </div>
  );
}
