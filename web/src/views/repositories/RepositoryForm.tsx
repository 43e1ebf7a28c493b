import { createSignal, Show } from 'solid-js';
import { createFields, fieldOfPath, type Refusal } from '../../components/form-fields.tsx';
import { ErrorNotice } from '../../components/Notice.tsx';
import type { Forge } from './repository-documents.ts';

/** The forges a repository may name, as people call them. */
const FORGES: readonly { value: Forge; label: string }[] = [
  { value: 'GITHUB', label: 'GitHub' },
  { value: 'GITLAB', label: 'GitLab' },
  { value: 'GITEA', label: 'Gitea' },
  { value: 'FORGEJO', label: 'Forgejo' },
  { value: 'GENERIC', label: 'Another git server' },
];

export const forgeLabel = (forge: Forge): string => FORGES.find((f) => f.value === forge)?.label ?? forge;

const API_PLACEHOLDERS: { readonly [F in Forge]: string } = {
  GITHUB: 'https://api.github.com',
  GITLAB: 'https://gitlab.example.com/api/v4',
  GITEA: 'https://gitea.example.com/api/v1',
  FORGEJO: 'https://codeberg.org/api/v1',
  GENERIC: '',
};

/** The settings the form edits, as createRepository and updateRepository take them. */
export interface RepositorySettings {
  cloneUrl: string;
  name: string | null;
  forge: Forge;
  defaultBranch: string | null;
  manifestPaths: string[] | null;
  includeBranches: string[];
  excludeBranches: string[];
  pollInterval: number | null;
  allowForkSecrets: boolean;
  buildEveryCommit: boolean;
  /** The name of the namespace's SSH key an ssh clone URL is fetched with; null: none. */
  sshKey: string | null;
  forgeApiUrl: string | null;
  forgeRepository: string | null;
  /** Undefined: keep the stored token (edit); null: none, or remove it. */
  forgeToken?: string | null;
}

/** What the form starts from when it edits a repository. */
interface RepositoryInitial {
  cloneUrl: string;
  name: string;
  forge: Forge;
  defaultBranch: string;
  manifestPaths: string[];
  includeBranches: string[];
  excludeBranches: string[];
  pollInterval: number | null;
  allowForkSecrets: boolean;
  buildEveryCommit: boolean;
  sshKey: string | null;
  forgeApiUrl: string | null;
  forgeRepository: string | null;
  hasForgeToken: boolean;
}

const FIELDS = [
  'cloneUrl',
  'name',
  'forge',
  'defaultBranch',
  'manifestPaths',
  'includeBranches',
  'excludeBranches',
  'pollInterval',
  'allowForkSecrets',
  'buildEveryCommit',
  'sshKey',
  'forgeApiUrl',
  'forgeRepository',
  'forgeToken',
] as const;
type FieldName = (typeof FIELDS)[number];

const fieldOf = (path: string | null | undefined) => fieldOfPath(path, FIELDS);

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
const globs = (text: string) => text.split(/[\s,]+/).filter(Boolean);

/**
 * The settings of a repository, to connect one (`initial` absent) or change one. `submit` calls the
 * mutation and answers null, or the refusal: shown next to the field its path names, else above the
 * buttons.
 */
export type { Refusal };

export function RepositoryForm(props: {
  id: string;
  initial?: RepositoryInitial;
  submitLabel: string;
  busyLabel: string;
  submit: (settings: RepositorySettings) => Promise<Refusal | null>;
  onCancel?: () => void;
}) {
  const init = props.initial;
  const [cloneUrl, setCloneUrl] = createSignal(init?.cloneUrl ?? '');
  const [name, setName] = createSignal(init?.name ?? '');
  const [forge, setForge] = createSignal<Forge>(init?.forge ?? 'GITHUB');
  const [defaultBranch, setDefaultBranch] = createSignal(init?.defaultBranch ?? '');
  const [manifestPaths, setManifestPaths] = createSignal(init?.manifestPaths.join('\n') ?? '');
  const [includeBranches, setIncludeBranches] = createSignal(init?.includeBranches.join(' ') ?? '');
  const [excludeBranches, setExcludeBranches] = createSignal(init?.excludeBranches.join(' ') ?? '');
  const [pollInterval, setPollInterval] = createSignal(init?.pollInterval?.toString() ?? '');
  const [allowForkSecrets, setAllowForkSecrets] = createSignal(init?.allowForkSecrets ?? false);
  const [buildEveryCommit, setBuildEveryCommit] = createSignal(init?.buildEveryCommit ?? false);
  const [sshKey, setSshKey] = createSignal(init?.sshKey ?? '');
  const [forgeApiUrl, setForgeApiUrl] = createSignal(init?.forgeApiUrl ?? '');
  const [forgeRepository, setForgeRepository] = createSignal(init?.forgeRepository ?? '');
  const [forgeToken, setForgeToken] = createSignal('');
  const [removeToken, setRemoveToken] = createSignal(false);
  const [refusal, setRefusal] = createSignal<Refusal | null>(null);
  const [busy, setBusy] = createSignal(false);

  const errorOf = (field: FieldName) => {
    const r = refusal();
    return r && fieldOf(r.path) === field ? r.message : null;
  };
  const formError = () => {
    const r = refusal();
    return r && fieldOf(r.path) === null ? r.message : null;
  };
  const { fieldId, described, Field } = createFields<FieldName>(props.id, errorOf);

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setRefusal(null);
    const poll = pollInterval().trim();
    const token = forgeToken();
    const settings: RepositorySettings = {
      cloneUrl: cloneUrl().trim(),
      name: name().trim() || null,
      forge: forge(),
      defaultBranch: defaultBranch().trim() || null,
      manifestPaths: lines(manifestPaths()).length > 0 ? lines(manifestPaths()) : null,
      includeBranches: globs(includeBranches()),
      excludeBranches: globs(excludeBranches()),
      pollInterval: poll === '' ? null : Number(poll),
      allowForkSecrets: allowForkSecrets(),
      buildEveryCommit: buildEveryCommit(),
      sshKey: sshKey().trim() || null,
      forgeApiUrl: forge() === 'GENERIC' ? null : forgeApiUrl().trim() || null,
      forgeRepository: forge() === 'GENERIC' ? null : forgeRepository().trim() || null,
    };
    if (token) settings.forgeToken = token;
    else if (!init || removeToken()) settings.forgeToken = null;
    setBusy(true);
    try {
      const refused = await props.submit(settings);
      setRefusal(refused);
      if (!refused) setForgeToken('');
      // Put the reader where the problem is.
      const field = fieldOf(refused?.path);
      if (field) document.getElementById(fieldId(field))?.focus();
    } finally {
      setBusy(false);
    }
  }

  return (
    <form
      class="card repository-form"
      aria-label={init ? `Settings of ${init.name}` : 'Connect a repository'}
      onSubmit={onSubmit}
      novalidate
    >
      <div class="form-row">
        <Field
          field="cloneUrl"
          label="Clone URL"
          hint="https://, ssh://, git@host:owner/repo.git (with an SSH key of the namespace) or file://"
        >
          <input
            {...described('cloneUrl', true)}
            required
            autocomplete="off"
            spellcheck={false}
            value={cloneUrl()}
            placeholder="https://github.com/owner/repo.git"
            onInput={(e) => setCloneUrl(e.currentTarget.value)}
          />
        </Field>
        <Field field="forge" label="Forge">
          <select
            {...described('forge', false)}
            value={forge()}
            onChange={(e) => setForge(e.currentTarget.value as Forge)}
          >
            {FORGES.map((f) => (
              <option value={f.value}>{f.label}</option>
            ))}
          </select>
        </Field>
      </div>
      <div class="form-row">
        <Field field="name" label="Name (optional)" hint="The clone URL's last segment when blank.">
          <input
            {...described('name', true)}
            autocomplete="off"
            value={name()}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field field="defaultBranch" label="Default branch (optional)" hint="Asked of the remote when blank.">
          <input
            {...described('defaultBranch', true)}
            autocomplete="off"
            value={defaultBranch()}
            placeholder="main"
            onInput={(e) => setDefaultBranch(e.currentTarget.value)}
          />
        </Field>
        <Field field="pollInterval" label="Poll interval (seconds)" hint="Blank: webhooks only, no polling.">
          <input
            {...described('pollInterval', true)}
            type="number"
            step="1"
            min="1"
            inputmode="numeric"
            value={pollInterval()}
            placeholder="webhooks only"
            onInput={(e) => setPollInterval(e.currentTarget.value)}
          />
        </Field>
      </div>
      <Field
        field="sshKey"
        label="SSH key (for ssh:// and git@host: URLs)"
        hint="The name of one of the namespace's SSH keys whose public half the forge knows (a deploy key). Blank for https:// and file://."
      >
        <input
          {...described('sshKey', true)}
          autocomplete="off"
          spellcheck={false}
          value={sshKey()}
          placeholder="deploy"
          onInput={(e) => setSshKey(e.currentTarget.value)}
        />
      </Field>
      <Field
        field="manifestPaths"
        label="Manifest paths"
        hint="One path or glob a line; every manifest found at a commit is a build. Blank: .kiln.yml and .kiln/*.yml."
      >
        <textarea
          {...described('manifestPaths', true)}
          rows={2}
          spellcheck={false}
          value={manifestPaths()}
          placeholder={'.kiln.yml\n.kiln/*.yml'}
          onInput={(e) => setManifestPaths(e.currentTarget.value)}
        />
      </Field>
      <div class="form-row">
        <Field
          field="includeBranches"
          label="Build only branches"
          hint="Globs, separated by spaces or commas (* stops at /, ** does not). Blank: every branch."
        >
          <input
            {...described('includeBranches', true)}
            autocomplete="off"
            spellcheck={false}
            value={includeBranches()}
            placeholder="main release/**"
            onInput={(e) => setIncludeBranches(e.currentTarget.value)}
          />
        </Field>
        <Field
          field="excludeBranches"
          label="Never build branches"
          hint="Globs. Tags and pull requests are not filtered."
        >
          <input
            {...described('excludeBranches', true)}
            autocomplete="off"
            spellcheck={false}
            value={excludeBranches()}
            placeholder="wip/**"
            onInput={(e) => setExcludeBranches(e.currentTarget.value)}
          />
        </Field>
      </div>
      <div class="field" data-field="buildEveryCommit">
        <label class="check">
          <input
            type="checkbox"
            name="buildEveryCommit"
            checked={buildEveryCommit()}
            onChange={(e) => setBuildEveryCommit(e.currentTarget.checked)}
          />
          Build every commit of a push, oldest first (at most 50), not only its head
        </label>
      </div>
      <div class="field" data-field="allowForkSecrets">
        <label class="check">
          <input
            type="checkbox"
            name="allowForkSecrets"
            checked={allowForkSecrets()}
            onChange={(e) => setAllowForkSecrets(e.currentTarget.checked)}
          />
          Give builds of pull requests from forks the namespace's secrets (masked variables, SSH keys,
          objects)
        </label>
        <Show when={errorOf('allowForkSecrets')}>
          {(m) => (
            <span class="field-error" role="alert">
              {m()}
            </span>
          )}
        </Show>
      </div>
      <Show when={forge() !== 'GENERIC'}>
        <fieldset class="forge-api">
          <legend>Forge API (optional)</legend>
          <p class="muted">
            With a token, Kiln reports each build's status on its commit
            {init ? '' : ', and installs the webhook on the forge itself'}.
          </p>
          <div class="form-row">
            <Field field="forgeApiUrl" label="Forge API URL" hint="Follows from the clone URL when blank.">
              <input
                {...described('forgeApiUrl', true)}
                autocomplete="off"
                spellcheck={false}
                value={forgeApiUrl()}
                placeholder={API_PLACEHOLDERS[forge()]}
                onInput={(e) => setForgeApiUrl(e.currentTarget.value)}
              />
            </Field>
            <Field
              field="forgeRepository"
              label="Forge repository"
              hint={
                forge() === 'GITLAB'
                  ? "The project's path or id; from the clone URL when blank."
                  : 'owner/repo; from the clone URL when blank.'
              }
            >
              <input
                {...described('forgeRepository', true)}
                autocomplete="off"
                spellcheck={false}
                value={forgeRepository()}
                placeholder={forge() === 'GITLAB' ? 'group/project' : 'owner/repo'}
                onInput={(e) => setForgeRepository(e.currentTarget.value)}
              />
            </Field>
            <Field
              field="forgeToken"
              label="Forge token"
              hint={
                init?.hasForgeToken ? 'A token is set; blank keeps it.' : 'Stored encrypted, never shown.'
              }
            >
              <input
                {...described('forgeToken', true)}
                type="password"
                autocomplete="new-password"
                value={forgeToken()}
                disabled={removeToken()}
                onInput={(e) => setForgeToken(e.currentTarget.value)}
              />
            </Field>
          </div>
          <Show when={init?.hasForgeToken}>
            <label class="check">
              <input
                type="checkbox"
                checked={removeToken()}
                onChange={(e) => setRemoveToken(e.currentTarget.checked)}
              />
              Remove the stored token (no more commit statuses)
            </label>
          </Show>
        </fieldset>
      </Show>
      <Show when={formError()}>{(m) => <ErrorNotice error={m()} title="Not saved" />}</Show>
      <div class="actions">
        <button type="submit" class="primary" disabled={busy()}>
          {busy() ? props.busyLabel : props.submitLabel}
        </button>
        <Show when={props.onCancel}>
          <button type="button" onClick={() => props.onCancel?.()}>
            Cancel
          </button>
        </Show>
      </div>
    </form>
  );
}
