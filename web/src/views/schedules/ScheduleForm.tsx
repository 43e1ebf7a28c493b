import { createSignal, For, Match, Show, Switch } from 'solid-js';
import { createFields, fieldOfPath, type Refusal } from '../../components/form-fields.tsx';
import { ErrorNotice } from '../../components/Notice.tsx';
import { createNow } from '../../lib/create-now.ts';
import { formatAgo } from '../../lib/format.ts';
import { createSchedulePreview, type Preview } from './create-schedule-preview.ts';
import { formatInZone, localZone, timeZones } from './schedule-words.ts';

/** A repository of the namespace a schedule may build. */
export interface SchedulableRepository {
  id: string;
  name: string;
  defaultBranch: string;
}

/**
 * The settings the form edits. A schedule builds a manifest or a repository's branch, chosen when it
 * is created (updateSchedule cannot change which, nor the repository).
 */
export interface ScheduleSettings {
  name: string;
  cron: string;
  /** Null: UTC. */
  timezone: string | null;
  enabled: boolean;
  /** Set when it builds a manifest. */
  manifest: string | null;
  /** Set when it builds a repository. */
  repositoryId: string | null;
  /** Null: the repository's default branch. */
  branch: string | null;
  onlyOnChanges: boolean;
}

/** What the form starts from when it edits a schedule. */
interface ScheduleInitial {
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  manifest: string | null;
  repository: SchedulableRepository | null;
  branch: string | null;
  onlyOnChanges: boolean;
}

const FIELDS = [
  'name',
  'cron',
  'timezone',
  'enabled',
  'manifest',
  'repositoryId',
  'branch',
  'onlyOnChanges',
] as const;
type FieldName = (typeof FIELDS)[number];

const fieldOf = (path: string | null | undefined) => fieldOfPath(path, FIELDS);

const EXAMPLE_MANIFEST = `driver: {type: os}
stages: [build]
jobs:
  - stage: build
    commands: [echo nightly]
`;

/**
 * A schedule's settings, to create one (`initial` absent) or change one, with a live preview of the
 * expression's next five times in the chosen zone and in the viewer's. Without `namespace` it is the
 * viewer's own schedule, which can only build a manifest. `submit` calls the mutation and answers
 * null, or the refusal: shown next to the field its path names, else above the buttons.
 */
export type { Refusal };

export function ScheduleForm(props: {
  id: string;
  /** `owner@path`; absent for the viewer's own schedules. */
  namespace?: string;
  repositories: readonly SchedulableRepository[];
  initial?: ScheduleInitial;
  submitLabel: string;
  busyLabel: string;
  submit: (settings: ScheduleSettings) => Promise<Refusal | null>;
  onCancel?: () => void;
}) {
  const init = props.initial;
  const now = createNow(1000);
  const [name, setName] = createSignal(init?.name ?? '');
  const [cron, setCron] = createSignal(init?.cron ?? '');
  const [timezone, setTimezone] = createSignal(init?.timezone ?? 'UTC');
  const [enabled, setEnabled] = createSignal(init?.enabled ?? true);
  const [builds, setBuilds] = createSignal<'manifest' | 'repository'>(
    init?.repository ? 'repository' : 'manifest',
  );
  const [manifest, setManifest] = createSignal(init?.manifest ?? (init ? '' : EXAMPLE_MANIFEST));
  const [repositoryId, setRepositoryId] = createSignal(init?.repository?.id ?? '');
  const [branch, setBranch] = createSignal(init?.branch ?? '');
  const [onlyOnChanges, setOnlyOnChanges] = createSignal(init?.onlyOnChanges ?? false);
  const [refusal, setRefusal] = createSignal<Refusal | null>(null);
  const [busy, setBusy] = createSignal(false);
  const preview = createSchedulePreview(cron, timezone);
  const mine = localZone();

  const repositories = () =>
    init?.repository && !props.repositories.some((r) => r.id === init.repository!.id)
      ? [init.repository, ...props.repositories]
      : props.repositories;
  const chosen = () => repositories().find((r) => r.id === repositoryId()) ?? null;

  /** The mutation's refusal of a field, else (for the expression and the zone) the preview's. */
  const errorOf = (field: FieldName) => {
    const r = refusal();
    if (r && fieldOf(r.path) === field) return r.message;
    const p = preview();
    return p.state === 'refused' && fieldOf(p.path) === field ? p.message : null;
  };
  const formError = () => {
    const r = refusal();
    return r && fieldOf(r.path) === null ? r.message : null;
  };
  /** Editing the field a refusal is about takes it away (the preview speaks for it from then on). */
  const edited = (field: FieldName) => {
    if (fieldOf(refusal()?.path) === field) setRefusal(null);
  };
  const { fieldId, described, Field } = createFields<FieldName>(props.id, errorOf);

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setRefusal(null);
    const repo = builds() === 'repository';
    const settings: ScheduleSettings = {
      name: name().trim(),
      cron: cron().trim(),
      timezone: timezone().trim() || null,
      enabled: enabled(),
      manifest: repo ? null : manifest(),
      repositoryId: repo ? repositoryId() || null : null,
      branch: repo ? branch().trim() || null : null,
      onlyOnChanges: repo && onlyOnChanges(),
    };
    if (repo && !settings.repositoryId) {
      setRefusal({ message: 'choose the repository each firing builds', path: 'repositoryId' });
      document.getElementById(fieldId('repositoryId'))?.focus();
      return;
    }
    setBusy(true);
    try {
      const refused = await props.submit(settings);
      setRefusal(refused);
      // Put the reader where the problem is.
      const field = fieldOf(refused?.path);
      if (field) document.getElementById(fieldId(field))?.focus();
    } finally {
      setBusy(false);
    }
  }

  return (
    <form
      class="card schedule-form"
      aria-label={init ? `Settings of ${init.name}` : 'New schedule'}
      onSubmit={onSubmit}
      novalidate
    >
      <Field field="name" label="Name">
        <input
          {...described('name', false)}
          required
          autocomplete="off"
          value={name()}
          placeholder="nightly"
          onInput={(e) => {
            setName(e.currentTarget.value);
            edited('name');
          }}
        />
      </Field>
      <div class="form-row">
        <Field
          field="cron"
          label="Cron expression"
          hint="minute hour day-of-month month day-of-week; six fields with seconds first; or @hourly, @daily, @weekly, @monthly, @yearly."
        >
          <input
            {...described('cron', true)}
            required
            autocomplete="off"
            spellcheck={false}
            class="mono"
            value={cron()}
            placeholder="0 3 * * *"
            onInput={(e) => {
              setCron(e.currentTarget.value);
              edited('cron');
            }}
          />
        </Field>
        <Field
          field="timezone"
          label="Time zone"
          hint={
            <>
              The IANA zone the expression is read in; blank is UTC.
              <Show when={mine && timezone().trim() !== mine}>
                {' '}
                <button
                  type="button"
                  class="link-button"
                  onClick={() => {
                    setTimezone(mine);
                    edited('timezone');
                  }}
                >
                  Use yours ({mine})
                </button>
              </Show>
            </>
          }
        >
          <input
            {...described('timezone', true)}
            autocomplete="off"
            spellcheck={false}
            list={`${props.id}-zones`}
            value={timezone()}
            placeholder="UTC"
            onInput={(e) => {
              setTimezone(e.currentTarget.value);
              edited('timezone');
            }}
          />
          <datalist id={`${props.id}-zones`}>
            <For each={timeZones()}>{(z) => <option value={z} />}</For>
          </datalist>
        </Field>
      </div>
      <SchedulePreview preview={preview()} zone={timezone().trim() || 'UTC'} local={mine} now={now()} />
      <Show when={props.namespace}>
        <fieldset class="schedule-builds">
          <legend>Each firing builds</legend>
          <label class="check">
            <input
              type="radio"
              name={`${props.id}-builds`}
              value="manifest"
              checked={builds() === 'manifest'}
              disabled={Boolean(init)}
              onChange={() => setBuilds('manifest')}
            />
            A manifest
          </label>
          <label class="check">
            <input
              type="radio"
              name={`${props.id}-builds`}
              value="repository"
              checked={builds() === 'repository'}
              disabled={Boolean(init) || repositories().length === 0}
              onChange={() => setBuilds('repository')}
            />
            The head of a repository's branch
            <Show when={!init && repositories().length === 0}>
              <span class="muted"> (connect a repository to the namespace first)</span>
            </Show>
          </label>
          <Show when={init}>
            <p class="muted">What a schedule builds is chosen when it is created.</p>
          </Show>
        </fieldset>
      </Show>
      <Switch>
        <Match when={builds() === 'manifest'}>
          <Field
            field="manifest"
            label="Manifest"
            hint={
              props.namespace
                ? 'Submitted as a build of the namespace at each time.'
                : 'Submitted as a build of yours at each time (your own schedules build manifests only).'
            }
          >
            <textarea
              {...described('manifest', true)}
              rows={8}
              spellcheck={false}
              value={manifest()}
              onInput={(e) => {
                setManifest(e.currentTarget.value);
                edited('manifest');
              }}
            />
          </Field>
        </Match>
        <Match when={builds() === 'repository'}>
          <div class="form-row">
            <Field field="repositoryId" label="Repository">
              <select
                {...described('repositoryId', false)}
                value={repositoryId()}
                disabled={Boolean(init)}
                onChange={(e) => {
                  setRepositoryId(e.currentTarget.value);
                  edited('repositoryId');
                }}
              >
                <option value="">Choose one…</option>
                <For each={repositories()}>{(r) => <option value={r.id}>{r.name}</option>}</For>
              </select>
            </Field>
            <Field field="branch" label="Branch (optional)" hint="Blank: the repository's default branch.">
              <input
                {...described('branch', true)}
                autocomplete="off"
                spellcheck={false}
                value={branch()}
                placeholder={chosen()?.defaultBranch ?? 'main'}
                onInput={(e) => {
                  setBranch(e.currentTarget.value);
                  edited('branch');
                }}
              />
            </Field>
          </div>
          <div class="field" data-field="onlyOnChanges">
            <label class="check">
              <input
                type="checkbox"
                name="onlyOnChanges"
                checked={onlyOnChanges()}
                onChange={(e) => {
                  setOnlyOnChanges(e.currentTarget.checked);
                  edited('onlyOnChanges');
                }}
              />
              Only on changes: skip a time when the branch head is the one this schedule last built
            </label>
            <Show when={errorOf('onlyOnChanges')}>
              {(m) => (
                <span class="field-error" role="alert">
                  {m()}
                </span>
              )}
            </Show>
          </div>
        </Match>
      </Switch>
      <div class="field" data-field="enabled">
        <label class="check">
          <input
            type="checkbox"
            name="enabled"
            checked={enabled()}
            onChange={(e) => setEnabled(e.currentTarget.checked)}
          />
          Enabled: fire at its times (unchecked, it waits paused)
        </label>
      </div>
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

/** The live preview: the next times in the chosen zone and in the viewer's, or why there are none. */
function SchedulePreview(props: { preview: Preview; zone: string; local: string; now: number }) {
  const times = () => (props.preview.state === 'times' ? props.preview.times : null);
  const refused = () => (props.preview.state === 'refused' ? props.preview : null);
  const failed = () => (props.preview.state === 'failed' ? props.preview.message : null);
  return (
    <section
      class="schedule-preview"
      aria-label="Next times"
      data-testid="schedule-preview"
      aria-live="polite"
    >
      <h3>Next times</h3>
      <Switch>
        <Match when={props.preview.state === 'idle'}>
          <p class="muted">Type an expression to see when it fires.</p>
        </Match>
        <Match when={props.preview.state === 'loading'}>
          <p class="muted">Working them out…</p>
        </Match>
        <Match when={refused()}>
          {(r) => (
            <p class="muted" data-testid="preview-refused">
              None: the {fieldOf(r().path) === 'timezone' ? 'zone' : 'expression'} is refused (see above).
            </p>
          )}
        </Match>
        <Match when={failed()}>{(m) => <ErrorNotice error={m()} title="No preview" />}</Match>
        <Match when={times()}>
          {(list) => (
            <ol class="preview-times">
              <For each={list()}>
                {(t) => (
                  <li data-time={t}>
                    <time class="preview-zone" datetime={t}>
                      {formatInZone(t, props.zone) ?? t}
                    </time>
                    <span class="preview-local muted">
                      {props.local === props.zone
                        ? 'your time too'
                        : `your time (${props.local}): ${formatInZone(t, props.local) ?? t}`}
                    </span>
                    <span class="preview-ago muted">{formatAgo(t, props.now)}</span>
                  </li>
                )}
              </For>
            </ol>
          )}
        </Match>
      </Switch>
    </section>
  );
}
