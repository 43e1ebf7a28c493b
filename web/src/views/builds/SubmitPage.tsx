import { A, useNavigate } from '@solidjs/router';
import { createMutation } from '@urql/solid';
import { createEffect, createSignal, For, Show } from 'solid-js';
import {
  ManifestEditor,
  type ManifestEditorApi,
  type ManifestProblem,
} from '../../components/ManifestEditor.tsx';
import { ErrorNotice } from '../../components/Notice.tsx';
import { graphql } from '../../graphql.ts';

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

const DRAFT_KEY = 'kiln.manifest-draft';
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
  const [problems, setProblems] = createSignal<ManifestProblem[]>([]);
  const [refusal, setRefusal] = createSignal<string | null>(null);
  const [error, setError] = createSignal<string | null>(null);
  const [submission, submit] = createMutation(SubmitBuild);
  let editor: ManifestEditorApi | undefined;

  createEffect(() => {
    try {
      sessionStorage.setItem(DRAFT_KEY, manifest());
    } catch {}
  });

  async function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    setError(null);
    const tagList = tags()
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const result = await submit({
      input: { manifest: manifest(), comment: comment().trim() || null, tags: tagList },
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
        <label for="manifest">Manifest (YAML)</label>
        <ManifestEditor
          id="manifest"
          value={manifest()}
          onInput={setManifest}
          problems={problems()}
          describedBy={problems().length > 0 ? 'manifest-problems' : undefined}
          ref={(api) => {
            editor = api;
          }}
        />
        <Show when={refusal()}>
          <div class="notice notice-error" role="alert" id="manifest-problems">
            <strong>The manifest was refused:</strong> {refusal()}
            <ul class="problems" aria-label="Manifest problems">
              <For each={problems()}>
                {(p) => (
                  <li>
                    <button
                      type="button"
                      class="problem"
                      disabled={p.line === null}
                      onClick={() => p.line !== null && editor?.focusAt(p.line, p.column)}
                    >
                      <span class="problem-loc">{p.line === null ? '–' : `${p.line}:${p.column ?? 1}`}</span>
                      <code class="problem-path">{p.path}</code>
                      <span class="problem-message">{p.message}</span>
                    </button>
                  </li>
                )}
              </For>
            </ul>
          </div>
        </Show>
        <div class="form-row">
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
          <button type="submit" class="primary" disabled={submission.fetching}>
            {submission.fetching ? 'Submitting…' : 'Submit build'}
          </button>
        </div>
      </form>
    </section>
  );
}
