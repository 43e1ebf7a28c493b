import { A, useNavigate } from '@solidjs/router';
import { createMutation, createQuery } from '@urql/solid';
import { createEffect, createMemo, createSignal, For, on, onCleanup, Show } from 'solid-js';
import {
  ManifestEditor,
  type ManifestEditorApi,
  type ManifestProblem,
} from '../../components/ManifestEditor.tsx';
import { ErrorNotice } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';
import { formatBytes } from '../../lib/format.ts';
import { useKiln } from '../../lib/kiln-context.ts';

const SubmitBuild = graphql(`
  mutation SubmitBuild($input: SubmitBuildInput!) {
    submitBuild(input: $input) {
      __typename
      ... on SubmitBuildSuccess {
        build {
          id
          number
        }
      }
      ... on ManifestError {
        message
        problems {
          path
          line
          column
          message
        }
      }
    }
  }
`);

/** The problems submitBuild would answer for this manifest, without submitting it. */
const ValidateManifest = graphql(`
  query ValidateManifest($manifest: String!) {
    validateManifest(manifest: $manifest) {
      path
      line
      column
      message
    }
  }
`);

/** Where the viewer may submit: the namespaces they own or collaborate on, one level of children. */
const SubmitNamespaces = graphql(`
  query SubmitNamespaces {
    viewer {
      id
      username
    }
    namespaces {
      path
      canWrite
      owner {
        username
      }
      children {
        path
        canWrite
        owner {
          username
        }
      }
    }
  }
`);

const DRAFT_KEY = 'kiln.manifest-draft';
/** The API refuses a larger manifest (MAX_MANIFEST_BYTES in runner/manifest/types.ts). */
const MANIFEST_MAX_BYTES = 256 * 1024;
const encoder = new TextEncoder();
const EXAMPLE = `driver:
  type: os
stages: [test]
jobs:
  - stage: test
    name: hello
    commands:
      - echo "hello from kiln"
`;

function loadDraft(): string {
  try {
    return sessionStorage.getItem(DRAFT_KEY) ?? EXAMPLE;
  } catch {
    return EXAMPLE;
  }
}

export default function SubmitPage() {
  const navigate = useNavigate();
  const [manifest, setManifest] = createSignal(loadDraft());
  const [comment, setComment] = createSignal('');
  const [tags, setTags] = createSignal('');
  const [namespace, setNamespace] = createSignal('');
  const [places] = createQuery({ query: SubmitNamespaces });
  /** `team/app` for the viewer's own, `owner@team/app` for those they collaborate on. */
  const namespaceChoices = createMemo(() => {
    const me = places.data?.viewer?.username;
    return (places.data?.namespaces ?? [])
      .flatMap((root) => [root, ...root.children])
      .filter((ns) => ns.canWrite)
      .map((ns) => (ns.owner.username === me ? ns.path : `${ns.owner.username}@${ns.path}`));
  });
  const [problems, setProblems] = createSignal<ManifestProblem[]>([]);
  const [refusal, setRefusal] = createSignal<string | null>(null);
  const [error, setError] = createSignal<string | null>(null);
  const [submission, submit] = createMutation(SubmitBuild);
  let editor: ManifestEditorApi | undefined;
  const { client } = useKiln();
  const bytes = createMemo(() => encoder.encode(manifest()).length);
  const tooBig = () => bytes() > MANIFEST_MAX_BYTES;

  /**
   * As the user types (once typing pauses for 300 ms), the API's problems with the draft; an answer
   * to an older draft is dropped. Submitting stays possible: the server has the last word.
   */
  const [checked, setChecked] = createSignal<{ manifest: string; problems: ManifestProblem[] } | null>(null);
  let validateTimer: ReturnType<typeof setTimeout> | undefined;
  createEffect(() => {
    const text = manifest();
    clearTimeout(validateTimer);
    if (bytes() > MANIFEST_MAX_BYTES) return;
    validateTimer = setTimeout(async () => {
      const result = await client.urql
        .query(ValidateManifest, { manifest: text }, { requestPolicy: 'network-only' })
        .toPromise();
      if (text !== manifest() || !result.data) return;
      setChecked({ manifest: text, problems: result.data.validateManifest });
    }, 300);
  });
  onCleanup(() => clearTimeout(validateTimer));
  /** The live problems of what is in the editor now (none while a check is due). */
  const liveProblems = () => {
    const c = checked();
    return c && c.manifest === manifest() ? c.problems : [];
  };
  // A refusal is about the manifest that was submitted; once it is edited, the live check speaks.
  createEffect(
    on(
      manifest,
      () => {
        setRefusal(null);
        setProblems([]);
      },
      { defer: true },
    ),
  );
  const shownProblems = () => (refusal() ? problems() : liveProblems());

  // The draft survives a reload; saved when typing pauses, not on every keystroke of a big manifest.
  let saveTimer: ReturnType<typeof setTimeout> | undefined;
  createEffect(() => {
    const text = manifest();
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => {
      try {
        sessionStorage.setItem(DRAFT_KEY, text);
      } catch {}
    }, 300);
  });
  onCleanup(() => clearTimeout(saveTimer));

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setError(null);
    const tagList = tags()
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const result = await submit({
      input: {
        manifest: manifest(),
        comment: comment().trim() || null,
        tags: tagList,
        namespace: namespace().trim() || null,
      },
    });
    if (result.error) return setError(result.error.message);
    const r = result.data?.submitBuild;
    switch (r?.__typename) {
      case 'SubmitBuildSuccess':
        setProblems([]);
        setRefusal(null);
        try {
          sessionStorage.removeItem(DRAFT_KEY);
        } catch {}
        navigate(`/builds/${r.build.id}`);
        return;
      case 'ManifestError':
        setRefusal(r.message);
        setProblems(r.problems);
        return;
    }
  }

  return (
    <section class="page">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <A href="/builds">Builds</A> <span aria-hidden="true">/</span> <span aria-current="page">New</span>
      </nav>
      <h1>New build</h1>
      <form class="submit-form" onSubmit={onSubmit}>
        <div class="manifest-label">
          <label for="manifest">Manifest (YAML)</label>
          <span class="muted" classList={{ 'size-over': tooBig() }} data-testid="manifest-size">
            {formatBytes(bytes())} of {formatBytes(MANIFEST_MAX_BYTES)}
          </span>
        </div>
        <ManifestEditor
          id="manifest"
          value={manifest()}
          onInput={setManifest}
          problems={shownProblems()}
          describedBy={shownProblems().length > 0 ? 'manifest-problems' : undefined}
          ref={(api) => {
            editor = api;
          }}
        />
        <Show when={tooBig()}>
          <div class="notice notice-error" role="alert" data-testid="manifest-too-big">
            <strong>The manifest is too big:</strong> it is {formatBytes(bytes())}, and the server takes at
            most {formatBytes(MANIFEST_MAX_BYTES)}. Shorten it before submitting.
          </div>
        </Show>
        <Show when={refusal()}>
          <div class="notice notice-error" role="alert" id="manifest-problems">
            <strong>The manifest was refused:</strong> {refusal()}
            <ProblemList problems={problems()} focusAt={(l, c) => editor?.focusAt(l, c)} />
          </div>
        </Show>
        <Show when={!refusal() && liveProblems().length > 0}>
          <div class="notice notice-warning" id="manifest-problems" data-testid="live-problems">
            <strong>
              {liveProblems().length} {liveProblems().length === 1 ? 'problem' : 'problems'} in this manifest
            </strong>{' '}
            <span class="muted">(checked as you type; the server would refuse it)</span>
            <ProblemList problems={liveProblems()} focusAt={(l, c) => editor?.focusAt(l, c)} />
          </div>
        </Show>
        <div class="form-row">
          <label>
            Namespace
            <input
              type="text"
              name="namespace"
              list="namespace-choices"
              autocomplete="off"
              value={namespace()}
              placeholder="the manifest's namespace:, or none"
              onInput={(e) => setNamespace(e.currentTarget.value)}
            />
            <datalist id="namespace-choices">
              <For each={namespaceChoices()}>{(path) => <option value={path} />}</For>
            </datalist>
          </label>
          <label>
            Comment
            <input type="text" value={comment()} onInput={(e) => setComment(e.currentTarget.value)} />
          </label>
          <label>
            Tags <span class="muted">(comma-separated)</span>
            <input
              type="text"
              value={tags()}
              placeholder="release, nightly"
              onInput={(e) => setTags(e.currentTarget.value)}
            />
          </label>
        </div>
        <Show when={error()}>{(e) => <ErrorNotice error={e()} title="Could not submit" />}</Show>
        <div class="actions">
          <button type="submit" class="primary" disabled={submission.fetching || tooBig()}>
            {submission.fetching ? 'Submitting…' : 'Submit build'}
          </button>
          <span class="muted" data-testid="problem-count" aria-live="polite">
            <Show when={checked()?.manifest === manifest()}>
              {liveProblems().length === 0
                ? 'No problems found'
                : `${liveProblems().length} ${liveProblems().length === 1 ? 'problem' : 'problems'}`}
            </Show>
          </span>
        </div>
      </form>
    </section>
  );
}

/** Manifest problems, each a button that puts the editor's caret where it is. */
function ProblemList(props: {
  problems: readonly ManifestProblem[];
  focusAt: (line: number, column: number | null) => void;
}) {
  return (
    <ul class="problems" aria-label="Manifest problems">
      <For each={props.problems}>
        {(p) => (
          <li>
            <button
              type="button"
              class="problem"
              disabled={p.line === null}
              onClick={() => p.line !== null && props.focusAt(p.line, p.column)}
            >
              <span class="problem-loc">{p.line === null ? '–' : `${p.line}:${p.column ?? 1}`}</span>
              <code class="problem-path">{p.path}</code>
              <span class="problem-message">{p.message}</span>
            </button>
          </li>
        )}
      </For>
    </ul>
  );
}
