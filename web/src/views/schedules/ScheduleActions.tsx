import { createMutation } from '@urql/solid';
import { createSignal, Show } from 'solid-js';
import { ErrorNotice } from '../../components/Notice.tsx';
import { DeleteSchedule, UpdateSchedule } from './schedule-documents.ts';

/**
 * Pause or Resume (updateSchedule's `enabled`; resuming fires from the next time on, never the times
 * skipped while paused) and Delete, after a confirmation.
 */
export function ScheduleActions(props: {
  schedule: { id: string; name: string; enabled: boolean };
  onChanged: () => void;
  onDeleted: () => void;
}) {
  const [updating, update] = createMutation(UpdateSchedule);
  const [deleting, remove] = createMutation(DeleteSchedule);
  const [error, setError] = createSignal<{ title: string; message: string } | null>(null);

  async function setEnabled(enabled: boolean) {
    setError(null);
    const title = enabled ? 'Could not resume' : 'Could not pause';
    const result = await update({ input: { id: props.schedule.id, enabled } });
    const r = result.data?.updateSchedule;
    if (result.error) setError({ title, message: result.error.message });
    else if (r && r.__typename !== 'UpdateScheduleSuccess') setError({ title, message: r.message });
    props.onChanged();
  }

  async function onDelete() {
    const ok = window.confirm(
      `Delete the schedule ${props.schedule.name}? It fires no more; the builds it started stay.`,
    );
    if (!ok) return;
    setError(null);
    const result = await remove({ input: { id: props.schedule.id } });
    const r = result.data?.deleteSchedule;
    if (result.error) return setError({ title: 'Could not delete', message: result.error.message });
    if (r?.__typename === 'NotFoundError') return setError({ title: 'Could not delete', message: r.message });
    props.onDeleted();
  }

  return (
    <>
      <div class="actions">
        <Show
          when={props.schedule.enabled}
          fallback={
            <button
              type="button"
              aria-label={`Resume ${props.schedule.name}`}
              disabled={updating.fetching}
              onClick={() => setEnabled(true)}
            >
              Resume
            </button>
          }
        >
          <button
            type="button"
            aria-label={`Pause ${props.schedule.name}`}
            disabled={updating.fetching}
            onClick={() => setEnabled(false)}
          >
            Pause
          </button>
        </Show>
        <button
          type="button"
          class="danger"
          aria-label={`Delete ${props.schedule.name}`}
          disabled={deleting.fetching}
          onClick={onDelete}
        >
          {deleting.fetching ? 'Deleting…' : 'Delete'}
        </button>
      </div>
      <Show when={error()}>{(e) => <ErrorNotice error={e().message} title={e().title} />}</Show>
    </>
  );
}
