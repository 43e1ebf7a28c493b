/**
 * What the console's forms share: a refusal (an InputError's message and the `path` of the field it
 * is about), the field a path names, and the pieces that tie a control to its hint and its error for
 * people and for assistive technology: `described(field, hasHint)` for the control's attributes, and
 * `Field` for the label, hint and error around it.
 */
import { type JSX, Show } from 'solid-js';

/** A refusal: an InputError's message and path (`input.pollInterval`, `input.manifestPaths[2]`). */
export interface Refusal {
  message: string;
  path?: string | null;
}

/** The field of `fields` an InputError's path names (an index at its end is dropped), or null. */
export function fieldOfPath<F extends string>(
  path: string | null | undefined,
  fields: readonly F[],
): F | null {
  const name = (path ?? '').replace(/^input\./, '').replace(/\[\d+\]$/, '');
  return (fields as readonly string[]).includes(name) ? (name as F) : null;
}

/** The per-field helpers of a form whose ids start with `formId`; `errorOf` says what to show. */
export function createFields<F extends string>(formId: string, errorOf: (field: F) => string | null) {
  const fieldId = (field: F) => `${formId}-${field}`;
  /** The attributes that tie a control to its hint and its error (getters: they follow the error). */
  const described = (field: F, hint: boolean) => ({
    id: fieldId(field),
    name: field,
    get 'aria-invalid'() {
      return errorOf(field) ? ('true' as const) : undefined;
    },
    get 'aria-describedby'() {
      const ids = [hint ? `${fieldId(field)}-hint` : '', errorOf(field) ? `${fieldId(field)}-error` : ''];
      return ids.filter(Boolean).join(' ') || undefined;
    },
  });

  function Field(p: { field: F; label: string; hint?: JSX.Element; children: JSX.Element }) {
    return (
      <div class="field" data-field={p.field} classList={{ 'field-invalid': Boolean(errorOf(p.field)) }}>
        <label for={fieldId(p.field)}>{p.label}</label>
        {p.children}
        <Show when={p.hint}>
          <span class="field-hint muted" id={`${fieldId(p.field)}-hint`}>
            {p.hint}
          </span>
        </Show>
        <Show when={errorOf(p.field)}>
          {(m) => (
            <span class="field-error" id={`${fieldId(p.field)}-error`} role="alert">
              {m()}
            </span>
          )}
        </Show>
      </div>
    );
  }

  return { fieldId, described, Field };
}
