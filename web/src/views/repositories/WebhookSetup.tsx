import { Match, Show, Switch } from 'solid-js';
import { CopyField } from '../../components/CopyField.tsx';
import { forgeLabel } from './RepositoryForm.tsx';
import type { Forge } from './repository-documents.ts';

/**
 * Where a forge's webhook goes and how to add it there by hand. The secret is known only right after
 * createRepository (the API never returns it again), so later this shows the URL alone.
 */
export function WebhookSetup(props: {
  forge: Forge;
  webhookUrl: string;
  secret?: string;
  installed: boolean;
}) {
  const secretWords = () => (props.secret ? 'the secret above' : 'the secret shown when it was connected');
  return (
    <div class="webhook-setup">
      <CopyField label="Webhook URL" value={props.webhookUrl} testId="webhook-url" />
      <Show when={props.secret}>
        {(s) => (
          <>
            <CopyField label="Webhook secret" value={s()} testId="webhook-secret" />
            <p>
              <strong>Copy the secret now: it will not be shown again.</strong> Kiln keeps it only encrypted,
              to check what the forge signs with it.
            </p>
          </>
        )}
      </Show>
      <Show
        when={!props.installed}
        fallback={
          <p data-testid="hook-installed">
            Kiln installed this webhook on {forgeLabel(props.forge)} itself with the forge token: there is
            nothing to paste. It is removed from the forge when you delete the repository here.
          </p>
        }
      >
        <div class="instructions" data-testid="webhook-instructions">
          <Switch>
            <Match when={props.forge === 'GITHUB'}>
              <p>On GitHub, in the repository:</p>
              <ol>
                <li>
                  <strong>Settings → Webhooks → Add webhook</strong>.
                </li>
                <li>
                  <strong>Payload URL</strong>: the webhook URL.
                </li>
                <li>
                  <strong>Content type</strong>: <code>application/json</code>.
                </li>
                <li>
                  <strong>Secret</strong>: {secretWords()}.
                </li>
                <li>
                  <strong>Let me select individual events</strong>: <strong>Pushes</strong> and{' '}
                  <strong>Pull requests</strong>. Then <strong>Add webhook</strong>.
                </li>
              </ol>
            </Match>
            <Match when={props.forge === 'GITLAB'}>
              <p>On GitLab, in the project:</p>
              <ol>
                <li>
                  <strong>Settings → Webhooks → Add new webhook</strong>.
                </li>
                <li>
                  <strong>URL</strong>: the webhook URL.
                </li>
                <li>
                  <strong>Secret token</strong>: {secretWords()}.
                </li>
                <li>
                  Triggers: <strong>Push events</strong>, <strong>Tag push events</strong> and{' '}
                  <strong>Merge request events</strong>. Then <strong>Add webhook</strong>.
                </li>
              </ol>
            </Match>
            <Match when={props.forge === 'GITEA' || props.forge === 'FORGEJO'}>
              <p>On {forgeLabel(props.forge)}, in the repository:</p>
              <ol>
                <li>
                  <strong>Settings → Webhooks → Add webhook</strong>, then {forgeLabel(props.forge)}.
                </li>
                <li>
                  <strong>Target URL</strong>: the webhook URL.
                </li>
                <li>
                  <strong>HTTP method</strong>: <code>POST</code>; <strong>POST content type</strong>:{' '}
                  <code>application/json</code>.
                </li>
                <li>
                  <strong>Secret</strong>: {secretWords()}.
                </li>
                <li>
                  <strong>Trigger on</strong> custom events: <strong>Push</strong> and{' '}
                  <strong>Pull request</strong>. Then <strong>Add webhook</strong>.
                </li>
              </ol>
            </Match>
            <Match when={props.forge === 'GENERIC'}>
              <p>
                A git server without GitHub, GitLab, Gitea or Forgejo webhooks can post GitHub-style push
                events to the webhook URL (JSON, <code>X-GitHub-Event: push</code>, signed in{' '}
                <code>X-Hub-Signature-256</code> with {secretWords()}); or give a poll interval and Kiln asks
                the remote for new commits itself.
              </p>
            </Match>
          </Switch>
        </div>
      </Show>
    </div>
  );
}
